"""A tiny CLIP byte-pair vocabulary (pure Python: used by the tests and the
`transformers` reference script, which runs without Keras).

Every letter is a token, with and without CLIP's end-of-word marker `</w>`; the
merges build a few whole words; `<|startoftext|>` and `<|endoftext|>` take the last
two ids, so the end-of-text token is the largest id, as in OpenAI's vocabulary.
"""

import json
import os
import string

WORDS = ("a", "photo", "of", "red", "blue", "circle", "square")


def tiny_vocabulary(words=WORDS):
    """`(vocabulary, merges)`: a dict token -> id and a list of "a b" rules."""
    tokens = list(string.ascii_lowercase)
    tokens += [c + "</w>" for c in string.ascii_lowercase]
    merges = []
    for word in words:
        if len(word) < 2:
            continue
        prefix = word[0]
        for i, char in enumerate(word[1:], start=1):
            last = i == len(word) - 1
            right = char + "</w>" if last else char
            merged = prefix + right
            rule = f"{prefix} {right}"
            if rule not in merges:
                merges.append(rule)
            if merged not in tokens:
                tokens.append(merged)
            prefix = prefix + char
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    return {token: i for i, token in enumerate(tokens)}, merges


def write_tiny_vocabulary(directory, words=WORDS):
    """Write `vocab.json` and `merges.txt` (the Hugging Face layout)."""
    vocabulary, merges = tiny_vocabulary(words)
    with open(os.path.join(directory, "vocab.json"), "w") as f:
        json.dump(vocabulary, f)
    with open(os.path.join(directory, "merges.txt"), "w") as f:
        f.write("#version: 0.2\n" + "\n".join(merges) + "\n")
    return vocabulary, merges
