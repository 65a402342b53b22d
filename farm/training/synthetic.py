"""A deterministic synthetic sentiment corpus, so the embedded default needs no file and no
download.

Records look like SST-2: movie-review phrases and sentences with a long-tailed length distribution
(many short phrases, some long sentences), sentiment carried by adjectives and verbs, flipped by
negations, softened or strengthened by intensifiers, often mixed ("but") so that some records are
hard, a share of rare invented names that make records distinctive, and a fraction of flipped labels
(annotator noise) that a model can only fit by memorising them -- which is what membership inference
detects.
"""

from __future__ import annotations

import numpy as np

POSITIVE = (
    "good great wonderful moving charming funny witty clever beautiful brilliant touching "
    "delightful engaging fresh smart gorgeous remarkable powerful inventive enjoyable heartfelt "
    "thoughtful warm lovely stunning hilarious entertaining compelling honest tender elegant sharp "
    "vivid rich intelligent playful sweet solid affecting masterful gripping luminous"
).split()
NEGATIVE = (
    "bad dull boring tedious awful flat stupid lame clumsy pointless silly tiresome bland shallow "
    "predictable messy weak lifeless forced hollow annoying dreary sloppy painful ugly cheap empty "
    "incoherent stale pretentious plodding listless inept murky trite grating overlong mediocre "
    "dismal soggy"
).split()
POS_VERBS = (
    "works succeeds delights shines soars charms sparkles resonates satisfies entertains".split()
)
NEG_VERBS = "fails drags stumbles sinks bores disappoints falters collapses grates annoys".split()
NOUNS = (
    "film movie story plot script cast performance direction dialogue ending soundtrack comedy "
    "drama thriller picture premise screenplay lead director camera work characters pacing humor "
    "tone narrative debut sequel documentary romance adaptation"
).split()
FILLER = (
    "the a of and to in that it is with as for its this on but an by at from his her their about "
    "more than all one what so who out there some into just even most such much also only yet "
    "little every still too way time life people world own something never enough both often where "
    "while because though"
).split()
INTENSIFIERS = "very really quite rather truly so thoroughly remarkably oddly surprisingly".split()
NEGATIONS = ("not", "never", "hardly", "far from")
SYLLABLES = "ka ro mi ta ne lu sa vo ri pe zu da fi mo ke la no be ti gu".split()


def synthetic_corpus(
    n: int, seed: int, *, label_noise: float = 0.08
) -> tuple[list[str], np.ndarray]:
    """``n`` (sentence, label) records from ``seed``; identical for identical arguments on every
    platform.

    Labels: 1 = positive. ``label_noise`` is the fraction of labels flipped after generation.
    """
    rng = np.random.default_rng([seed, 0x5EED])
    names = [_name(rng) for _ in range(max(8, n // 10))]
    sentences, labels = [], np.zeros(n, dtype=np.int64)
    for i in range(n):
        text, polarity = _record(rng, names)
        sentences.append(text)
        labels[i] = int(polarity > 0 or (polarity == 0 and rng.random() < 0.5))
    flip = rng.random(n) < label_noise
    labels[flip] = 1 - labels[flip]
    return sentences, labels


def _record(rng: np.random.Generator, names: list[str]) -> tuple[str, float]:
    n_words = int(np.clip(rng.lognormal(mean=2.0, sigma=0.75), 1, 55))
    words: list[str] = []
    polarity = 0.0
    while len(words) < n_words:
        kind = rng.random()
        if kind < 0.35:
            phrase, value = _sentiment_phrase(rng)
            words += phrase
            polarity += value
        elif kind < 0.42:
            words.append(names[int(rng.integers(len(names)))])
        elif kind < 0.47 and words:
            words.append("but")
            polarity *= 0.4  # what follows "but" weighs more
        else:
            words += [
                FILLER[int(rng.integers(len(FILLER)))] for _ in range(int(rng.integers(1, 4)))
            ]
    if polarity == 0.0:
        phrase, polarity = _sentiment_phrase(rng)
        words = phrase + words
    return " ".join(words), polarity


def _sentiment_phrase(rng: np.random.Generator) -> tuple[list[str], float]:
    positive = rng.random() < 0.5
    strength = 1.0
    if rng.random() < 0.5:
        adj = _pick(rng, POSITIVE if positive else NEGATIVE)
        phrase = [adj, NOUNS[int(rng.integers(len(NOUNS)))]] if rng.random() < 0.6 else [adj]
    else:
        verb = _pick(rng, POS_VERBS if positive else NEG_VERBS)
        phrase = [NOUNS[int(rng.integers(len(NOUNS)))], verb]
    if rng.random() < 0.3:
        phrase.insert(0, INTENSIFIERS[int(rng.integers(len(INTENSIFIERS)))])
        strength = 1.6
    if rng.random() < 0.15:
        phrase = NEGATIONS[int(rng.integers(len(NEGATIONS)))].split() + phrase
        positive = not positive
        strength *= 0.7
    return phrase, strength if positive else -strength


def _pick(rng: np.random.Generator, words: list[str]) -> str:
    return words[int(rng.integers(len(words)))]


def _name(rng: np.random.Generator) -> str:
    parts = int(rng.integers(2, 4))
    return "".join(SYLLABLES[int(rng.integers(len(SYLLABLES)))] for _ in range(parts)).capitalize()
