"""The built-in demo's data: "mini-FLAN", a small instruction mixture in English and Chinese, written by code.

    python train.py       trains a fresh ~1M-parameter byte-level T5 on it (docs/training.md, section 6)

Seven tasks, each asked in several phrasings (templates) per language; the model answers in the language it is
asked in ("Where is Ganymede?" -> Jupiter, "伽尼米德在哪里？" -> 木星). Everything is offline and deterministic from
a seed, and small enough that the model learns it from scratch on a laptop CPU in minutes. The byte tokenizer
reads Chinese as it is: a Chinese character is 3 UTF-8 bytes, so 3 tokens.

Every task has training phrasings and a held-out phrasing that only the evaluation uses, in each language. Where a
model can generalise (arithmetic, spelling) items are held out too (numbers, made-up words), so the score measures
generalisation, not recall. Facts cannot be guessed: every fact is trained on, in the training phrasings, and the
evaluation asks it in the held-out phrasing.

What makes this learnable in minutes (found by training small models on it): a held-out phrasing asks in a style
that other tasks are trained with ("Which ...?", "Name ...", "Tell me ...", terse; 告诉我…, 说出…, …是什么？),
never with unseen words (a small model copies their letters into answers), and keeps the item's neighbouring words
as in some training phrasing (" of {x}": the model finds the word to spell by its neighbours); variants that
differ by one word (first/last, after/before, plus/minus) are one task, so that word is read; the spelling tasks
use made-up words, too many to memorise. The Chinese phrasings keep the made-up words and the numbers in Latin
letters and digits, set off by spaces, as Chinese text usually writes them.
"""

from __future__ import annotations

import random
import re
from typing import Sequence

LANGUAGES = ("en", "zh")

# ------------------------------------------------------------------------------------------------ the facts
PLANETS = ("Mercury", "Venus", "Earth", "Mars", "Jupiter", "Saturn", "Uranus", "Neptune")  # from the Sun out
BY_SIZE = ("Jupiter", "Saturn", "Uranus", "Neptune", "Earth", "Venus", "Mars", "Mercury")  # largest first
MOONS = {"Phobos": "Mars", "Deimos": "Mars", "Io": "Jupiter", "Europa": "Jupiter", "Ganymede": "Jupiter",
         "Callisto": "Jupiter", "Titan": "Saturn", "Rhea": "Saturn", "Mimas": "Saturn", "Enceladus": "Saturn",
         "Iapetus": "Saturn", "Dione": "Saturn", "Miranda": "Uranus", "Ariel": "Uranus", "Titania": "Uranus",
         "Oberon": "Uranus", "Triton": "Neptune", "Nereid": "Neptune", "Proteus": "Neptune"}

# Names in each language, keyed by the English name. A moon has two Chinese names, both taught: its
# transliteration (伽尼米德) and its systematic name (木卫三, "Jupiter's satellite 3"), the one most Chinese
# texts use.
PLANET_NAMES = {
    "en": {planet: planet for planet in PLANETS},
    "zh": dict(zip(PLANETS, ("水星", "金星", "地球", "火星", "木星", "土星", "天王星", "海王星"))),
}
MOON_NAMES = {
    "en": {moon: (moon,) for moon in MOONS},
    "zh": {"Phobos": ("福波斯", "火卫一"), "Deimos": ("得摩斯", "火卫二"), "Io": ("伊奥", "木卫一"),
           "Europa": ("欧罗巴", "木卫二"), "Ganymede": ("伽尼米德", "木卫三"), "Callisto": ("卡利斯托", "木卫四"),
           "Titan": ("泰坦", "土卫六"), "Rhea": ("瑞亚", "土卫五"), "Mimas": ("弥玛斯", "土卫一"),
           "Enceladus": ("恩克拉多斯", "土卫二"), "Iapetus": ("伊阿珀托斯", "土卫八"), "Dione": ("狄俄涅", "土卫四"),
           "Miranda": ("米兰达", "天卫五"), "Ariel": ("艾瑞尔", "天卫一"), "Titania": ("泰坦尼亚", "天卫三"),
           "Oberon": ("奥伯龙", "天卫四"), "Triton": ("特里同", "海卫一"), "Nereid": ("涅瑞伊德", "海卫二"),
           "Proteus": ("普罗透斯", "海卫八")},
}
ORDINALS = {"en": ("1st", "2nd", "3rd", "4th", "5th", "6th", "7th", "8th"),
            "zh": ("一", "二", "三", "四", "五", "六", "七", "八")}  # 第三近 = the 3rd closest
# The word that picks a task's variant, {w} in the templates.
VARIANTS = {"en": dict(after="after", before="before", plus="plus", minus="minus", first="first", last="last"),
            "zh": dict(after="之后", before="之前", plus="加", minus="减", first="第一个", last="最后一个")}

# ------------------------------------------------------------------------------------------------ the phrasings
# language -> task -> (training templates, held-out templates). {x}, {y}: the item; {w}: the word that picks the
# variant (VARIANTS); {op}: its symbol (+ or -).
PHRASINGS = {
    "en": {
        "moon": (["Where is {x}?", "Which planet does {x} orbit?", "Name the planet {x} orbits.",
                  "{x} orbits which planet?"], ["Tell me the planet {x} orbits."]),
        "planet_order": (["Which planet comes {w} {x}?", "Tell me the planet {w} {x}.", "Planet {w} {x}?"],
                         ["Name the planet {w} {x}."]),
        "nth_planet": (["Name the {x} planet from the Sun.", "Tell me the {x} planet from the Sun.", "{x} planet?"],
                       ["Which is the {x} planet from the Sun?"]),
        "larger_planet": (["Which is larger, {x} or {y}?", "Name the larger of {x} and {y}.",
                           "Tell me the larger of {x} and {y}."], ["Larger: {x} or {y}?"]),
        "arithmetic": (["What is {x} {w} 1?", "What is {x} {op} 1?", "{x} {op} 1 =", "Tell me {x} {w} 1."],
                       ["Tell me {x} {op} 1."]),
        "reverse": (["Reverse {x}", "What is the reverse of {x}?", "Tell me the reverse of {x}.",
                     "Spell backwards: {x}"], ["Name the reverse of {x}."]),
        "letter": (["Name the {w} letter of {x}.", "Tell me the {w} letter of {x}.", "{w} letter of {x}?"],
                   ["What is the {w} letter of {x}?"]),
    },
    "zh": {
        "moon": (["{x}在哪里？", "{x}绕哪颗行星运行？", "说出{x}环绕的行星。", "{x}是哪颗行星的卫星？"],
                 ["告诉我{x}环绕的行星。"]),
        "planet_order": (["哪颗行星排在{x}{w}？", "告诉我{x}{w}的行星。", "{x}{w}的行星？"],
                         ["说出{x}{w}的行星。"]),
        "nth_planet": (["说出离太阳第{x}近的行星。", "告诉我离太阳第{x}近的行星。", "第{x}颗行星？"],
                       ["离太阳第{x}近的是哪颗行星？"]),
        "larger_planet": (["{x}和{y}哪个更大？", "说出{x}和{y}中较大的一个。", "告诉我{x}和{y}中较大的一个。"],
                          ["{x}和{y}中哪个更大？"]),
        "arithmetic": (["{x} {w} 1 等于多少？", "{x} {op} 1 等于多少？", "{x} {op} 1 是多少？", "告诉我 {x} {w} 1 等于多少。"],
                       ["告诉我 {x} {op} 1 等于多少。"]),
        "reverse": (["把 {x} 倒过来写", "{x} 倒过来是什么？", "告诉我 {x} 倒过来怎么写。", "倒着拼：{x}"],
                    ["说出 {x} 倒过来怎么写。"]),
        "letter": (["说出 {x} 的{w}字母。", "告诉我 {x} 的{w}字母。", "{x} 的{w}字母？"],
                   ["{x} 的{w}字母是什么？"]),
    },
}
SHARES = {"moon": 1, "planet_order": 1, "nth_planet": 1, "larger_planet": 1, "arithmetic": 4, "reverse": 4,
          "letter": 3}  # share of the training mixture, the same in every language
FACT_TASKS = ("moon", "planet_order", "nth_planet", "larger_planet")  # every item is trained on


def language(text: str) -> str:
    """"zh" if the text holds a Chinese character, else "en": which language a demo question is asked in."""
    return "zh" if re.search(r"[\u4e00-\u9fff]", text) else "en"


def made_up_words() -> list[str]:
    """9,720 short pronounceable non-words (consonant-vowel-consonant, then a vowel or not): too many to
    memorise, so the spelling tasks must be solved by reading the letters."""
    consonants, vowels = "bcdfghjklmnprstvwz", "aeiou"
    cvc = [c + v + d for c in consonants for v in vowels for d in consonants]
    return cvc + [w + v for w in cvc for v in vowels]


def _task_items(task: str, lang: str, words: Sequence[str], numbers: Sequence[int], rng: random.Random,
                count: int) -> list[tuple[dict, str]]:
    """`count` random (template fields, answer) items of a task in one language, from these words or numbers."""
    name, variant = PLANET_NAMES[lang], VARIANTS[lang]
    items = []
    for _ in range(count):
        if task == "moon":
            moon = rng.choice(list(MOONS))
            items.append((dict(x=rng.choice(MOON_NAMES[lang][moon])), name[MOONS[moon]]))
        elif task == "planet_order":
            i = rng.randrange(7)  # neighbours PLANETS[i] and PLANETS[i + 1]
            if rng.random() < 0.5:
                items.append((dict(w=variant["after"], x=name[PLANETS[i]]), name[PLANETS[i + 1]]))
            else:
                items.append((dict(w=variant["before"], x=name[PLANETS[i + 1]]), name[PLANETS[i]]))
        elif task == "nth_planet":
            i = rng.randrange(8)
            items.append((dict(x=ORDINALS[lang][i]), name[PLANETS[i]]))
        elif task == "larger_planet":
            a, b = rng.sample(PLANETS, 2)
            items.append((dict(x=name[a], y=name[b]), name[min(a, b, key=BY_SIZE.index)]))
        elif task == "arithmetic":  # plus or minus 1: copy the digits, change the last (and carry)
            n, plus = rng.choice(numbers), rng.random() < 0.5
            items.append((dict(x=n, w=variant["plus" if plus else "minus"], op="+" if plus else "-"),
                          str(n + 1 if plus else n - 1)))
        elif task == "reverse":
            word = rng.choice(words)
            items.append((dict(x=word), word[::-1]))
        elif task == "letter":
            word, first = rng.choice(words), rng.random() < 0.5
            items.append((dict(x=word, w=variant["first" if first else "last"]), word[0] if first else word[-1]))
        else:
            raise ValueError(f"unknown demo task {task!r}; known: {', '.join(SHARES)}")
    return items


def demo_tasks(seed: int = 0, train_per_share: int = 1000, eval_per_task: int = 40, by_task: bool = False,
               languages: Sequence[str] = LANGUAGES):
    """The mini-FLAN mixture: (train_pairs, eval_pairs), shuffled lists of (input_text, target_text).

    In each language, each task gets share * train_per_share training pairs (training templates and items:
    15,000 pairs per language by default) and up to eval_per_task evaluation pairs (201 English and 220 Chinese
    by default) whose inputs never occur in training: facts in the held-out template; the other tasks on
    held-out items (a fifth of the numbers 1..999, 400 of the made-up words, held out in every language), half
    of them in the held-out template. by_task=True returns dicts language -> task -> pairs."""
    unknown = [lang for lang in languages if lang not in PHRASINGS]
    if unknown:
        raise ValueError(f"unknown demo language(s) {', '.join(unknown)}; known: {', '.join(PHRASINGS)}")
    rng = random.Random(seed)
    words, numbers = made_up_words(), list(range(1, 1000))
    rng.shuffle(words)
    rng.shuffle(numbers)
    held_words, held_numbers = words[:400], numbers[:200]
    train_words, train_numbers = words[400:], numbers[200:]
    train, evaluation = {}, {}
    for lang in languages:
        train[lang], evaluation[lang] = {}, {}
        for task, (train_templates, held_templates) in PHRASINGS[lang].items():
            items = _task_items(task, lang, train_words, train_numbers, rng, SHARES[task] * train_per_share)
            pairs = [(rng.choice(train_templates).format(**fields), answer) for fields, answer in items]
            seen, pool = {source for source, _ in pairs}, {}  # pool: input -> answer, each input once
            for attempt in range(20 * eval_per_task):  # facts have few items: stop when they run out
                if len(pool) == eval_per_task:
                    break
                (fields, answer), = _task_items(task, lang, held_words, held_numbers, rng, 1)
                held_out_template = task in FACT_TASKS or attempt % 2 == 0
                source = rng.choice(held_templates if held_out_template else train_templates).format(**fields)
                if source not in seen:
                    pool[source] = answer
            train[lang][task], evaluation[lang][task] = pairs, list(pool.items())
    if by_task:
        return train, evaluation
    train_pairs = [pair for tasks in train.values() for pairs in tasks.values() for pair in pairs]
    eval_pairs = [pair for tasks in evaluation.values() for pairs in tasks.values() for pair in pairs]
    rng.shuffle(train_pairs)
    rng.shuffle(eval_pairs)
    return train_pairs, eval_pairs


def demo_table(seed: int = 0) -> str:
    """The demo's tasks as a Markdown table: phrasings per language, an example, training and evaluation sizes."""
    train, evaluation = demo_tasks(seed, by_task=True)
    rows = ["| task | language | training phrasings | held-out phrasing | example | train | eval |",
            "|---|---|---|---|---|---|---|"]
    for task in SHARES:
        for lang in train:
            train_templates, held_templates = PHRASINGS[lang][task]
            source, target = evaluation[lang][task][0]
            rows.append(f"| {task} | {lang} | {'<br>'.join(train_templates)} | {'<br>'.join(held_templates)} | "
                        f"{source} → {target} | {len(train[lang][task])} | {len(evaluation[lang][task])} |")
    return "\n".join(rows)
