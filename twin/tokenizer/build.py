"""Regenerates the twin's bundled tokenizer in this folder, offline and deterministically.

Trains a byte-level BPE (4096 tokens) with the ``tokenizers`` library on generated English-like
text and saves it with ``transformers`` so that ``AutoTokenizer.from_pretrained(<this dir>)``
loads it without network access. Run: ``python twin/tokenizer/build.py``.
"""

from __future__ import annotations

import json
import os
import pathlib
import random

# One training thread keeps merges identical from run to run.
os.environ["RAYON_NUM_THREADS"] = "1"

from tokenizers import (
    Tokenizer,  # noqa: E402
    decoders,  # noqa: E402
    models,  # noqa: E402
    pre_tokenizers,  # noqa: E402
    trainers,  # noqa: E402
)

HERE = pathlib.Path(__file__).resolve().parent
VOCAB_SIZE = 4096
BOS, EOS, PAD = "<|begin_of_text|>", "<|eot_id|>", "<|pad|>"
SPECIAL = [BOS, EOS, PAD, "<|start_header_id|>", "<|end_header_id|>"]
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}<|start_header_id|>{{ message['role'] }}"
    "<|end_header_id|>\n\n{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}{% if part['type'] == 'text' %}"
    "{{ part['text'] }}{% endif %}{% endfor %}{% endif %}<|eot_id|>{% endfor %}"
    "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)

# Common English words: the corpus is sentences drawn from them, so sonnets and chat prompts
# tokenize into a realistic number of tokens per word.
WORDS = """
the of and to a in is you that it he was for on are as with his they i at be this have from
or one had by word but not what all were we when your can said there use an each which she do
how their if will up other about out many then them these so some her would make like him into
time has look two more write go see number no way could people my than first water been call
who oil its now find long down day did get come made may part thou thee thy thine doth hath art
love beauty summer winter spring autumn rose heart eye eyes fair sweet death night sun moon star
time world life truth light dark praise shall thought mind soul youth age grace worth shame
glory fortune nature heaven earth tongue face sight pen verse rhyme song muse friend self
over new sound take only little work know place year live me back give most very after thing
our just name good sentence man think say great where help through much before line right too
mean old any same tell boy follow came want show also around form three small set put end does
another well large must big even such because turn here why ask went men read need land
different home us move try kind hand picture again change off play spell air away animal house
point page letter mother answer found study still learn should america world high every near
add food between own below country plant last school father keep tree never start city
model server token request latency throughput batch memory cache prefill decode queue gpu
""".split()


def corpus(lines: int = 20000, seed: int = 0) -> list[str]:
    """Generates the training text.

    Args:
        lines: Number of sentences.
        seed: Random seed.

    Returns:
        Sentences of words, numbers and punctuation.
    """
    rng = random.Random(seed)
    out = []
    for _ in range(lines):
        words = [rng.choice(WORDS) for _ in range(rng.randint(4, 18))]
        if rng.random() < 0.3:
            words[0] = words[0].capitalize()
        if rng.random() < 0.1:
            words.insert(rng.randrange(len(words)), str(rng.randint(0, 9999)))
        out.append(" ".join(words) + rng.choice([".", ",", ";", ":", "!", "?", ""]))
    return out


def build(target: pathlib.Path = HERE) -> None:
    """Trains the tokenizer and writes it to ``target``.

    Args:
        target: Output directory.
    """
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=SPECIAL,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(corpus(), trainer=trainer)
    wrapped = PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=tokenizer,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        model_max_length=131072,
        chat_template=CHAT_TEMPLATE,
    )
    wrapped.save_pretrained(str(target))
    # Older transformers (4.x) know neither the "TokenizersBackend" class name nor a separate
    # chat_template.jinja; name the compatible class and inline the template as well.
    config_path = target / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    config.update(tokenizer_class="PreTrainedTokenizerFast", chat_template=CHAT_TEMPLATE)
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    build()
