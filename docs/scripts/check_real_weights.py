"""minit5 against transformers on real flan-T5 weights: `python -m minit5.parity` on a downloaded checkpoint.

    python docs/scripts/check_real_weights.py                      downloads google/flan-t5-small (~0.3 GiB) once
    python docs/scripts/check_real_weights.py --hub google/flan-t5-base
    python docs/scripts/check_real_weights.py --model DIR          a folder you downloaded, e.g. with
                                                                   `hf download google/flan-t5-small --local-dir DIR`

All it adds to `python -m minit5.parity MODEL` is the default checkpoint and, without a connection, one line saying
it skipped (exit 0) instead of an error. Needs transformers (pip install -e ".[test]") and, to download,
huggingface_hub (pip install -e ".[hub]"). Exit status as the tool's: 0 agree, 1 differ, 2 bad input.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def fetch(hub_id: str) -> Path | None:
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        sys.exit(f'error: downloading {hub_id} needs huggingface_hub: pip install -e ".[hub]" (or pass --model DIR)')
    from minit5.checkpoint import HUB_FILES
    try:
        return Path(snapshot_download(hub_id, allow_patterns=HUB_FILES))
    except Exception as e:  # offline, proxy, unknown repo: all mean "cannot check here"
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0]
        reason = reason if len(reason) <= 120 else reason[:119] + "…"
        print(f"skipped: could not download {hub_id} ({reason}); run this with internet access, or pass --model DIR")
        return None


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="a local Hugging Face folder (config.json, weights, tokenizer files)")
    p.add_argument("--hub", default="google/flan-t5-small", help="hub id to download when --model is not given")
    p.add_argument("--max-new-tokens", type=int, default=32)
    args = p.parse_args()
    if args.max_new_tokens < 1:  # before any download or loading
        sys.exit(f"error: --max-new-tokens must be at least 1, got {args.max_new_tokens}")
    folder = Path(args.model) if args.model else fetch(args.hub)
    if folder is None:
        return 0
    from minit5.parity import main as parity
    return parity([str(folder), "--max-new-tokens", str(args.max_new_tokens)])


if __name__ == "__main__":
    sys.exit(main())
