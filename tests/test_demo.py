"""minit5.demo: the bilingual mini-FLAN mixture. Deterministic, held out per language (phrasings, numbers, words),
answers right in the language asked, and readable by the byte tokenizer."""

import re

import pytest

from minit5.demo import (BY_SIZE, FACT_TASKS, LANGUAGES, MOON_NAMES, MOONS, ORDINALS, PHRASINGS, PLANET_NAMES,
                         PLANETS, SHARES, VARIANTS, demo_table, demo_tasks, language, made_up_words)
from minit5.tokenizer import Tokenizer

WORD_SET = set(made_up_words())
CHINESE = re.compile(r"[\u4e00-\u9fff]")


@pytest.fixture(scope="module")
def split():
    return demo_tasks(seed=0, by_task=True)


def template_matches(templates, source, lang):
    """Does `source` read as one of these templates with its {fields} filled in?"""
    fields = {r"\{op\}": "[+-]", r"\{w\}": "(?:" + "|".join(VARIANTS[lang].values()) + ")", r"\{x\}": ".+",
              r"\{y\}": ".+"}
    patterns = []
    for template in templates:
        pattern = re.escape(template)
        for field, regex in fields.items():
            pattern = pattern.replace(field, regex)
        patterns.append(pattern)
    return re.fullmatch("|".join(patterns), source) is not None


def test_demo_is_deterministic_and_sized(split):
    train, evaluation = demo_tasks(seed=0)
    assert demo_tasks(seed=0) == (train, evaluation)
    assert demo_tasks(seed=1)[0] != train
    assert (len(train), len(evaluation)) == (30000, 421)
    sizes = {lang: sum(map(len, split[1][lang].values())) for lang in LANGUAGES}
    assert sizes == {"en": 201, "zh": 220}  # the Chinese moons have two names each: 38 held-out questions
    for lang in LANGUAGES:
        assert {task: len(pairs) for task, pairs in split[0][lang].items()} == {t: s * 1000 for t, s in SHARES.items()}
    assert len(set(train)) > 16000  # spelling and arithmetic items rarely repeat
    # adding Chinese leaves the English data as it was
    english_only = demo_tasks(seed=0, by_task=True, languages=["en"])
    assert english_only[0]["en"] == split[0]["en"] and english_only[1]["en"] == split[1]["en"]
    small_train, small_eval = demo_tasks(seed=0, train_per_share=10, eval_per_task=5)
    assert len(small_train) == 2 * 150 and len(small_eval) == 2 * 5 * len(SHARES)
    assert len(WORD_SET) == 9720 and all(len(w) in (3, 4) for w in WORD_SET)
    with pytest.raises(ValueError, match="unknown demo language"):
        demo_tasks(languages=["fr"])


def test_every_task_has_chinese_phrasings_and_pairs_are_in_their_language(split):
    train, evaluation = split
    assert set(PHRASINGS) == set(LANGUAGES) and all(set(PHRASINGS[lang]) == set(SHARES) for lang in LANGUAGES)
    for lang in LANGUAGES:
        for task, (train_templates, held_templates) in PHRASINGS[lang].items():
            assert len(train_templates) >= 3 and len(held_templates) == 1, (lang, task)
            assert all(bool(CHINESE.search(t)) == (lang == "zh") for t in train_templates + held_templates)
            assert all(language(s) == lang for s, _ in train[lang][task] + evaluation[lang][task]), (lang, task)
    # the planet and moon answers are in the language asked
    for lang, names in PLANET_NAMES.items():
        for task in ("moon", "planet_order", "nth_planet", "larger_planet"):
            assert {t for _, t in train[lang][task]} <= set(names.values()), (lang, task)
    assert set(PLANET_NAMES["zh"].values()) == {"水星", "金星", "地球", "火星", "木星", "土星", "天王星", "海王星"}
    assert ("伽尼米德在哪里？", "木星") in train["zh"]["moon"] and ("木卫三在哪里？", "木星") in train["zh"]["moon"]
    assert ("Where is Ganymede?", "Jupiter") in train["en"]["moon"]
    assert language("伽尼米德在哪里？") == "zh" and language("Where is Ganymede?") == "en"


def test_demo_evaluation_is_held_out_in_each_language(split):
    train, evaluation = split
    train_inputs = {s for tasks in train.values() for pairs in tasks.values() for s, _ in pairs}
    for lang in LANGUAGES:
        for task, (train_templates, held_templates) in PHRASINGS[lang].items():
            pairs, held = train[lang][task], evaluation[lang][task]
            assert all(template_matches(train_templates, s, lang) for s, _ in pairs), (lang, task)
            assert not any(template_matches(held_templates, s, lang) for s, _ in pairs), (lang, task)
            assert len(held) >= 8 and not train_inputs & {s for s, _ in held}, (lang, task)
            in_held_template = sum(template_matches(held_templates, s, lang) for s, _ in held)
            if task in FACT_TASKS:
                assert in_held_template == len(held), (lang, task)
            else:
                assert len(held) == 40 and 12 <= in_held_template <= 28, (lang, task)
        # every fact is trained on, under each of its names
        names = {n for aliases in MOON_NAMES[lang].values() for n in aliases}
        assert {n for n in names if any(n in s for s, _ in train[lang]["moon"])} == names
        assert {s for s, _ in evaluation[lang]["moon"]} == {PHRASINGS[lang]["moon"][1][0].format(x=n) for n in names}
        assert len(evaluation[lang]["larger_planet"]) == 40  # of the 56 ordered pairs of planets
    # held-out numbers and words never occur in training, in any language
    numbers = lambda pairs: {int(re.search(r"\d+", s).group()) for s, _ in pairs}  # noqa: E731
    trained_numbers = numbers(train["en"]["arithmetic"] + train["zh"]["arithmetic"])
    assert 790 <= len(trained_numbers) <= 799  # 8000 draws from the 799 training numbers
    words = lambda pairs: {w for s, _ in pairs for w in re.findall(r"\b[a-z]+\b", s)} & WORD_SET  # noqa: E731
    trained_words = words([p for lang in LANGUAGES for task in ("reverse", "letter") for p in train[lang][task]])
    for lang in LANGUAGES:
        assert numbers(evaluation[lang]["arithmetic"]) and not numbers(evaluation[lang]["arithmetic"]) & trained_numbers
        for task in ("reverse", "letter"):
            assert words(evaluation[lang][task]) and not words(evaluation[lang][task]) & trained_words, (lang, task)


# The right answers, worked out from the question text alone (independently of how demo.py builds them).
ZH_PLANETS = dict(zip(("水星", "金星", "地球", "火星", "木星", "土星", "天王星", "海王星"), PLANETS))
EN_NAME = {**{p: p for p in PLANETS}, **ZH_PLANETS}  # any planet name -> English


def planets_in(source):
    return re.findall("|".join(sorted(EN_NAME, key=len, reverse=True)), source)


def moon_of(source, lang):
    if lang == "en":
        return [MOONS[w] for w in re.findall(r"[A-Z][a-z]+", source) if w in MOONS][0]
    if re.search("[火木土天海]卫[一二三四五六七八]", source):  # systematic name: the planet's first character
        return {"火": "Mars", "木": "Jupiter", "土": "Saturn", "天": "Uranus", "海": "Neptune"}[
            re.search("([火木土天海])卫", source).group(1)]
    names = {n: m for m, (n, _) in MOON_NAMES["zh"].items()}
    return MOONS[names[max((n for n in names if n in source), key=len)]]


def answer(source, task, lang):
    """The right answer in English; the caller names it in the question's language."""
    word = lambda: [w for w in re.findall(r"\b[a-z]+\b", source) if w in WORD_SET][0]  # noqa: E731
    if task == "moon":
        return moon_of(source, lang)
    if task == "planet_order":
        later = "after" in source or "之后" in source
        return PLANETS[PLANETS.index(EN_NAME[planets_in(source)[0]]) + (1 if later else -1)]
    if task == "nth_planet":
        ordinal = re.search(r"\d(st|nd|rd|th)|第([一二三四五六七八])", source)
        return PLANETS[ORDINALS["en"].index(ordinal.group()) if lang == "en" else "一二三四五六七八".index(ordinal.group(2))]
    if task == "larger_planet":
        return min((EN_NAME[p] for p in planets_in(source)), key=BY_SIZE.index)
    if task == "arithmetic":
        plus = any(w in source for w in ("+", "plus", "加"))
        return str(int(re.search(r"\d+", source).group()) + (1 if plus else -1))
    if task == "reverse":
        return word()[::-1]
    if task == "letter":
        return word()[0 if ("first" in source or "第一个" in source) else -1]


def test_demo_answers_are_right_in_the_language_asked():
    train, evaluation = demo_tasks(seed=3, by_task=True)
    for lang in LANGUAGES:
        for task in SHARES:
            for source, target in evaluation[lang][task] + train[lang][task][:300]:
                expected = answer(source, task, lang)
                if task in FACT_TASKS:
                    expected = PLANET_NAMES[lang][expected]
                assert target == expected, (lang, task, source, target)
    assert ("Tell me the planet Ganymede orbits.", "Jupiter") in evaluation["en"]["moon"]
    assert ("告诉我伽尼米德环绕的行星。", "木星") in evaluation["zh"]["moon"]


def test_demo_round_trips_through_the_byte_tokenizer(split):
    tok = Tokenizer.byte_level()
    assert tok.encode("木星", add_eos=False) == [b + 3 for b in "木星".encode()] and len(tok.encode("木星")) == 7
    train, evaluation = split
    pairs = [p for tasks in evaluation.values() for ps in tasks.values() for p in ps]
    pairs += [p for tasks in train.values() for ps in tasks.values() for p in ps[:100]]
    for source, target in pairs:
        for text in (source, target):
            ids = tok.encode(text)
            assert tok.decode(ids) == text and len(ids) == len(text.encode()) + 1, text
    # short texts: byte-level tokens are expensive (a Chinese character is 3)
    assert max(len(s.encode()) for s, _ in pairs) <= 51 and max(len(t.encode()) for _, t in pairs) <= 9


def test_demo_table_lists_every_task_in_every_language():
    table = demo_table().splitlines()
    assert len(table) == 2 + len(SHARES) * len(LANGUAGES)
    assert table[2].startswith("| moon | en | Where is {x}?<br>") and table[2].endswith("| 1000 | 19 |")
    assert table[3].startswith("| moon | zh | {x}在哪里？<br>") and table[3].endswith("| 1000 | 38 |")
