"""CTranslate2's side of bench/run.py --only decode-int8, in a process of its own (run.py says why).

    python bench/ctranslate2_worker.py '[FOLDER, THREADS, REPS, [[NAME, SOURCE, NEW_TOKENS, BEAMS], ...]]'

FOLDER is a Hugging Face T5 folder with a tokenizer whose token i is "t{i}"; SOURCE is a batch of prompts as such
tokens. The weights are converted with CTranslate2's own converter, once per precision (float32, int8), next to
FOLDER. Each case is decoded with its length forced to NEW_TOKENS (checked), once to warm up, then REPS times; the
last line of the output is JSON: {"float32 NAME": median seconds, "int8 NAME": ..., ...}.
"""

import json
import statistics
import sys
import time

import ctranslate2


def main():
    folder, threads, reps, cases = json.loads(sys.argv[1])
    times = {}
    for quantization in ("float32", "int8"):
        out = f"{folder}/ctranslate2-{quantization}"
        ctranslate2.converters.TransformersConverter(folder).convert(out, quantization=quantization, force=True)
        translator = ctranslate2.Translator(out, device="cpu", compute_type=quantization, inter_threads=1,
                                            intra_threads=threads)
        for name, source, new_tokens, beams in cases:
            kw = dict(beam_size=beams, max_decoding_length=new_tokens, min_decoding_length=new_tokens,
                      max_batch_size=0)
            check = translator.translate_batch(source, **kw)  # also the warm-up
            assert all(len(r.hypotheses[0]) == new_tokens for r in check), "length not forced"
            runs = []
            for _ in range(reps):
                start = time.perf_counter()
                translator.translate_batch(source, **kw)
                runs.append(time.perf_counter() - start)
            times[f"{quantization} {name}"] = statistics.median(runs)
    print(json.dumps(times))


if __name__ == "__main__":
    main()
