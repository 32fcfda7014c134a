"""Token counting for the server: the model directory's tokenizer, or the bundled one.

Uses the ``tokenizers`` library and a sandboxed Jinja chat template directly, which is much
faster to load and to call than ``transformers`` (the server tokenizes every request).
"""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
import pathlib
from collections.abc import Sequence

import jinja2.sandbox
import tokenizers

BUNDLED_TOKENIZER = pathlib.Path(__file__).resolve().parent / "tokenizer"

_log = logging.getLogger(__name__)
# Text of generated tokens: common words, so streamed output looks like text.
_WORDS = (
    " the",
    " twin",
    " of",
    " a",
    " model",
    " and",
    " server",
    " token",
    " is",
    " fast",
    " to",
    " in",
    " time",
    " that",
    " batch",
    " with",
)


def _token_text(value: object) -> str:
    if isinstance(value, dict):
        return str(value.get("content", ""))
    return str(value or "")


def _raise(message: str) -> None:
    raise jinja2.TemplateError(message)


class TextTokenizer:
    """Tokenizer plus chat template of one tokenizer directory.

    Args:
        directory: A directory holding ``tokenizer.json`` (and optionally
            ``tokenizer_config.json`` / ``chat_template.jinja``).
    """

    def __init__(self, directory: pathlib.Path) -> None:
        self.directory = directory
        self._tokenizer = tokenizers.Tokenizer.from_file(str(directory / "tokenizer.json"))
        config_path = directory / "tokenizer_config.json"
        config = json.loads(config_path.read_text()) if config_path.is_file() else {}
        template = config.get("chat_template")
        if isinstance(template, list):
            named = {t.get("name"): t.get("template") for t in template}
            template = named.get("default") or next(iter(named.values()), None)
        jinja_path = directory / "chat_template.jinja"
        if not template and jinja_path.is_file():
            template = jinja_path.read_text()
        self._bos = _token_text(config.get("bos_token"))
        self._eos = _token_text(config.get("eos_token"))
        env = jinja2.sandbox.ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        env.globals.update(
            raise_exception=_raise, strftime_now=lambda f: datetime.datetime.now().strftime(f)
        )
        self._template = env.from_string(template) if template else None

    def encode(self, text: str) -> list[int]:
        """Token ids of raw text (no special tokens added).

        Args:
            text: The text.

        Returns:
            Token ids.
        """
        return list(self._tokenizer.encode(text, add_special_tokens=False).ids)

    def encode_chat(self, messages: Sequence[object]) -> list[int]:
        """Token ids of chat messages after the chat template, with the generation prompt.

        Args:
            messages: OpenAI chat messages.

        Returns:
            Token ids, as SGLang counts ``usage.prompt_tokens``.
        """
        if self._template is not None:
            try:
                text = self._template.render(
                    messages=messages,
                    add_generation_prompt=True,
                    bos_token=self._bos,
                    eos_token=self._eos,
                )
                return self.encode(text)
            except (jinja2.TemplateError, TypeError, KeyError) as e:
                _log.warning("chat template failed (%s); counting message text only", e)
        parts = []
        for message in messages:
            content = message.get("content") if isinstance(message, dict) else None
            if isinstance(content, list):
                content = " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
            parts.append(str(content or ""))
        return self.encode("\n".join(parts))


def load_tokenizer(*candidates: pathlib.Path | None) -> TextTokenizer:
    """Loads the first candidate directory that holds a ``tokenizer.json``.

    Args:
        *candidates: Directories to try in order (``None`` entries are skipped).

    Returns:
        The tokenizer; the bundled one when no candidate has a ``tokenizer.json``.
    """
    for directory in candidates:
        if directory is not None and (directory / "tokenizer.json").is_file():
            return TextTokenizer(directory)
    return TextTokenizer(BUNDLED_TOKENIZER)


def output_text(start: int, count: int) -> str:
    """Text of generated tokens ``start .. start + count - 1``.

    Args:
        start: Index of the first token.
        count: Number of tokens.

    Returns:
        Deterministic filler text, one word per token.
    """
    return "".join(_WORDS[i % len(_WORDS)] for i in range(start, start + count))


def natural_length(ids: Sequence[int], max_new: int) -> int:
    """Where the simulated model stops by itself (``ignore_eos`` false): 1..512, <= max_new.

    Args:
        ids: Prompt token ids (the length is a pseudo-random function of them).
        max_new: ``max_tokens`` of the request.

    Returns:
        Output length in tokens.
    """
    digest = hashlib.blake2b(repr(list(ids[-64:])).encode(), digest_size=4).digest()
    return min(max_new, 1 + int.from_bytes(digest, "little") % 512)
