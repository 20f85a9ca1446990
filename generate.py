"""Ask a T5 model something:  python generate.py [--model DIR_OR_HUB_ID] [--adapter LORA_DIR] [PROMPT ...]

The front door of the repository; the command itself is minit5/generate_cli.py (installed as minit5-generate).
`python generate.py --help` lists the options.
"""

from minit5.generate_cli import main

if __name__ == "__main__":
    main()
