"""(ext) Validation patterns for captures (docs/format.md, "Built values, extra fields and
validation patterns").

A validation pattern is a small, regex-like language with no groups, alternation or
back-references: a sequence of atoms (a literal character, an escape such as ``\\d``, ``.``, or a
class ``[...]``), each with at most one quantifier (``?``, ``*``, ``+``, ``{n}``, ``{n,}``,
``{n,m}``). It always matches the whole value; a leading ``^`` and a trailing ``$`` may be written
and change nothing. It is never given to a backtracking regex engine: it is compiled to a
position automaton whose states are the bits of one integer and run by the extended Shift-And
method (every character costs a fixed number of integer operations), so matching is linear in
the value whatever the pattern.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

__all__ = [
    "MAX_ATOMS",
    "MAX_PATTERN",
    "MAX_REPEAT",
    "PatternSyntaxError",
    "ValuePattern",
    "compile_value_pattern",
]

MAX_PATTERN: Final = 256  # characters in a pattern
MAX_REPEAT: Final = 64  # the largest n or m of a {n,m}
MAX_ATOMS: Final = 256  # atoms once every {n,m} is written out

_DIGITS: Final = frozenset("0123456789")
_WORD: Final = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")
_SPACE: Final = frozenset(" \t\n\r\f\v")
_SHORTHANDS: Final = {"d": (_DIGITS, False), "w": (_WORD, False), "s": (_SPACE, False)}
_CONTROLS: Final = {"n": "\n", "r": "\r", "t": "\t", "f": "\f", "v": "\v"}
_NOT_LINEAR: Final = {
    "(": "a group",
    ")": "a group",
    "|": "an alternation",
}


class PatternSyntaxError(ValueError):
    """A pattern that is not in the language; the message says where and why."""


Test = Callable[[str], bool]


@dataclass(frozen=True, slots=True)
class _Atom:
    test: Test
    optional: bool
    repeat: bool


@dataclass(frozen=True, slots=True)
class ValuePattern:
    """A compiled validation pattern: :meth:`matches` is linear in the value."""

    source: str
    atoms: tuple[_Atom, ...]
    loops: int  # states j+1 with a self-loop on atom j's class
    blocks_all: int  # every state of a run of optional atoms (Navarro's A)
    blocks_first: int  # the first state of each run (I)
    blocks_last: int  # the last state of each run (F)

    def matches(self, value: str) -> bool:
        final = 1 << len(self.atoms)
        masks: dict[str, int] = {}
        state = self._closure(1)
        for ch in value:
            mask = masks.get(ch)
            if mask is None:
                mask = 0
                for j, atom in enumerate(self.atoms):
                    if atom.test(ch):
                        mask |= 1 << j
                masks[ch] = mask
            state = ((state & mask) << 1) | (state & (mask << 1) & self.loops)
            if not state:
                return False
            state = self._closure(state)
        return bool(state & final)

    def _closure(self, state: int) -> int:
        """Follow the empty moves over runs of optional atoms, all runs at once."""
        if not self.blocks_all:
            return state
        with_last = state | self.blocks_last
        return state | (self.blocks_all & ~((with_last - self.blocks_first) ^ with_last))


def compile_value_pattern(source: str) -> ValuePattern:
    """The pattern ``source``; raises :class:`PatternSyntaxError` when it is not one."""
    if len(source) > MAX_PATTERN:
        raise PatternSyntaxError(f"a pattern is at most {MAX_PATTERN} characters")
    body = source
    if body.startswith("^"):
        body = body[1:]
    if body.endswith("$") and not _escaped_at(body, len(body) - 1):
        body = body[:-1]
    atoms: list[_Atom] = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch in _NOT_LINEAR:
            raise PatternSyntaxError(
                f"{_NOT_LINEAR[ch]} at character {i + 1}: validation patterns have no groups, "
                "alternation or back-references, so that matching stays linear"
            )
        if ch in "^$":
            raise PatternSyntaxError(
                f"{ch!r} at character {i + 1}: a pattern always matches the whole value, so ^ "
                "and $ may only open and close it (write \\^ or \\$ for the character)"
            )
        if ch in "?*+{":
            raise PatternSyntaxError(f"{ch!r} at character {i + 1} repeats nothing")
        test, i = _atom(body, i)
        low, high, i = _quantifier(body, i)
        if i < len(body) and body[i] in "?*+{":
            raise PatternSyntaxError(
                f"{body[i]!r} at character {i + 1}: an atom takes one quantifier (no lazy or "
                "possessive forms, no quantifier of a quantifier)"
            )
        for _ in range(low):
            atoms.append(_Atom(test, optional=False, repeat=False))
        if high is None:
            if low:
                atoms[-1] = _Atom(test, optional=False, repeat=True)
            else:
                atoms.append(_Atom(test, optional=True, repeat=True))
        else:
            atoms.extend(_Atom(test, optional=True, repeat=False) for _ in range(high - low))
        if len(atoms) > MAX_ATOMS:
            raise PatternSyntaxError(
                f"the pattern is too long: at most {MAX_ATOMS} atoms once each {{n,m}} is "
                "written out"
            )
    return _automaton(source, tuple(atoms))


def _automaton(source: str, atoms: tuple[_Atom, ...]) -> ValuePattern:
    loops = first = last = every = 0
    j = 0
    while j < len(atoms):
        if atoms[j].repeat:
            loops |= 1 << (j + 1)
        if not atoms[j].optional:
            j += 1
            continue
        start = j
        while j < len(atoms) and atoms[j].optional:
            if atoms[j].repeat:
                loops |= 1 << (j + 1)
            j += 1
        # states start … j: the run's atoms are skipped by empty moves start → … → j
        first |= 1 << start
        last |= 1 << j
        every |= ((1 << (j + 1)) - 1) ^ ((1 << start) - 1)
    return ValuePattern(
        source=source,
        atoms=atoms,
        loops=loops,
        blocks_all=every,
        blocks_first=first,
        blocks_last=last,
    )


def _escaped_at(text: str, index: int) -> bool:
    backslashes = 0
    while index - backslashes - 1 >= 0 and text[index - backslashes - 1] == "\\":
        backslashes += 1
    return backslashes % 2 == 1


def _atom(body: str, i: int) -> tuple[Test, int]:
    ch = body[i]
    if ch == ".":
        return (lambda c: True), i + 1
    if ch == "\\":
        return _escape(body, i)
    if ch == "[":
        return _class(body, i)
    return ch.__eq__, i + 1


def _escape(body: str, i: int) -> tuple[Test, int]:
    if i + 1 >= len(body):
        raise PatternSyntaxError("the pattern ends with a lone backslash")
    ch = body[i + 1]
    if ch.lower() in _SHORTHANDS:
        members, _ = _SHORTHANDS[ch.lower()]
        if ch.isupper():
            return (lambda c: c not in members), i + 2
        return members.__contains__, i + 2
    if ch in _CONTROLS:
        return _CONTROLS[ch].__eq__, i + 2
    if ch.isalnum():
        raise PatternSyntaxError(
            f"\\{ch} at character {i + 1} is not an escape of this language (back-references "
            "and anchors other than ^ and $ are not part of it)"
        )
    return ch.__eq__, i + 2


def _class(body: str, i: int) -> tuple[Test, int]:
    start = i
    i += 1
    negated = i < len(body) and body[i] == "^"
    if negated:
        i += 1
    chars: set[str] = set()
    ranges: list[tuple[str, str]] = []
    sets: list[frozenset[str]] = []
    first = True
    while True:
        if i >= len(body):
            raise PatternSyntaxError(f"the class opened at character {start + 1} is not closed")
        ch = body[i]
        if ch == "]" and not first:
            i += 1
            break
        first = False
        if ch == "\\":
            if i + 1 >= len(body):
                raise PatternSyntaxError("the pattern ends with a lone backslash")
            esc = body[i + 1]
            if esc.lower() in _SHORTHANDS and esc.islower():
                sets.append(_SHORTHANDS[esc][0])
                i += 2
                continue
            if esc.isalnum() and esc not in _CONTROLS:
                raise PatternSyntaxError(
                    f"\\{esc} at character {i + 1} is not an escape a class may hold"
                )
            ch = _CONTROLS.get(esc, esc)
            i += 2
        else:
            i += 1
        if i + 1 < len(body) and body[i] == "-" and body[i + 1] != "]":
            high = body[i + 1]
            step = 2
            if high == "\\":
                if i + 2 >= len(body):
                    raise PatternSyntaxError("the pattern ends with a lone backslash")
                high = _CONTROLS.get(body[i + 2], body[i + 2])
                step = 3
            if high < ch:
                raise PatternSyntaxError(f"the range {ch}-{high} at character {i} runs backwards")
            ranges.append((ch, high))
            i += step
        else:
            chars.add(ch)
    members = frozenset(chars)
    spans = tuple(ranges)
    groups = tuple(sets)

    def test(c: str) -> bool:
        inside = c in members or any(low <= c <= high for low, high in spans)
        inside = inside or any(c in s for s in groups)
        return inside != negated

    return test, i


def _quantifier(body: str, i: int) -> tuple[int, int | None, int]:
    """(least, most or None for no bound, next index) of the quantifier at ``i``, if any."""
    if i >= len(body):
        return 1, 1, i
    ch = body[i]
    if ch == "?":
        return 0, 1, i + 1
    if ch == "*":
        return 0, None, i + 1
    if ch == "+":
        return 1, None, i + 1
    if ch != "{":
        return 1, 1, i
    end = body.find("}", i)
    if end == -1:
        raise PatternSyntaxError(f"the {{ at character {i + 1} is not closed (write \\{{)")
    inner = body[i + 1 : end]
    low_text, comma, high_text = inner.partition(",")
    if not low_text.isdigit() or (high_text and not high_text.isdigit()) or len(inner) > 9:
        raise PatternSyntaxError(
            f"{{{inner}}} at character {i + 1} is not {{n}}, {{n,}} or {{n,m}}"
        )
    low = int(low_text)
    high: int | None = int(high_text) if high_text else (None if comma else low)
    if low > MAX_REPEAT or (high is not None and high > MAX_REPEAT):
        raise PatternSyntaxError(
            f"{{{inner}}} at character {i + 1}: n and m are at most {MAX_REPEAT}"
        )
    if high is not None and high < low:
        raise PatternSyntaxError(f"{{{inner}}} at character {i + 1}: m is less than n")
    return low, high, end + 1
