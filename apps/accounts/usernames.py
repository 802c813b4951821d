"""The one username rule, applied wherever an account is made (API sign-up, web sign-up,
`manage.py create_user`, all through accounts.services.create_user):

1. Unicode NFKC normalisation (fullwidth letters, ligatures and composed accents become their
   plain form; what is stored is the normalised name), surrounding whitespace dropped.
2. Nothing invisible: no format (Cf: zero-width space/joiner, bidi overrides…), control (Cc),
   private-use or unassigned character anywhere.
3. Letters, digits and `.` `_` `-` `@` `+` only (Django's default set), at most 150 characters:
   no spaces, brackets or markup.
4. Not confusable with a physician's or an administrator's username: the two names' skeletons
   (casefolded, NFKC, common Cyrillic/Greek homoglyphs and 0/1 mapped to Latin letters,
   separators `.` `-` `_` removed) must differ. A patient cannot sign up as "dr.h0use" or
   "dr-hоuse" (Cyrillic о) beside the physician "dr-house".

The homoglyph table is deliberately small (the letters that really pass for Latin ones in
usernames); it is not Unicode's full confusables list (TR39).
"""

from __future__ import annotations

import re
import unicodedata

from django.core.exceptions import ValidationError

MAX_LENGTH = 150
ALLOWED = re.compile(r"[\w.@+-]+\Z")
INVISIBLE_CATEGORIES = {"Cf", "Cc", "Co", "Cn", "Cs", "Zl", "Zp"}
# Letters (Lo) and marks that render as nothing: Hangul fillers, Khmer inherent vowels.
INVISIBLE_LETTERS = set("\u115f\u1160\u3164\uffa0\u17b4\u17b5")
SEPARATORS = str.maketrans("", "", ".-_")

# Characters that pass for Latin letters or digits, mapped to the letter they pass for (applied
# before casefolding, so capitals that only look alike in upper case are covered too).
HOMOGLYPHS = {
    # Cyrillic
    "а": "a",
    "в": "b",
    "е": "e",
    "ё": "e",
    "к": "k",
    "м": "m",
    "н": "h",
    "о": "o",
    "п": "n",
    "р": "p",
    "с": "c",
    "т": "t",
    "у": "y",
    "х": "x",
    "ѕ": "s",
    "і": "i",
    "ї": "i",
    "ј": "j",
    "ԁ": "d",
    "һ": "h",
    "ӏ": "l",
    "ԛ": "q",
    "ԝ": "w",
    "ɡ": "g",
    "А": "a",
    "В": "b",
    "Е": "e",
    "Ё": "e",
    "К": "k",
    "М": "m",
    "Н": "h",
    "О": "o",
    "Р": "p",
    "С": "c",
    "Т": "t",
    "У": "y",
    "Х": "x",
    "Ѕ": "s",
    "І": "i",
    "Ї": "i",
    "Ј": "j",
    "Ӏ": "l",
    # Greek
    "α": "a",
    "β": "b",
    "ε": "e",
    "ι": "i",
    "κ": "k",
    "ν": "v",
    "ο": "o",
    "ρ": "p",
    "τ": "t",
    "υ": "u",
    "χ": "x",
    "ω": "w",
    "Α": "a",
    "Β": "b",
    "Ε": "e",
    "Ζ": "z",
    "Η": "h",
    "Ι": "i",
    "Κ": "k",
    "Μ": "m",
    "Ν": "n",
    "Ο": "o",
    "Ρ": "p",
    "Τ": "t",
    "Υ": "y",
    "Χ": "x",
    # Latin look-alikes and digits
    "ı": "i",
    "ł": "l",
    "0": "o",
    "1": "l",
}
# Letter pairs that read as one letter at a glance (after the mapping above).
DIGRAPHS = (("rn", "m"), ("vv", "w"))


def normalize(raw: str) -> str:
    return unicodedata.normalize("NFKC", raw or "").strip()


def skeleton(name: str) -> str:
    """What a name looks like: equal skeletons = names a reader can mistake for each other."""
    text = normalize(name)
    text = "".join(HOMOGLYPHS.get(ch, ch) for ch in text)
    text = unicodedata.normalize("NFKC", text.casefold())
    text = "".join(HOMOGLYPHS.get(ch, ch) for ch in text)  # letters that only casefolding revealed
    text = "".join(ch for ch in unicodedata.normalize("NFD", text) if unicodedata.category(ch) != "Mn")
    text = text.translate(SEPARATORS)
    for pair, single in DIGRAPHS:
        text = text.replace(pair, single)
    return text


def _invisible(ch: str) -> bool:
    return unicodedata.category(ch) in INVISIBLE_CATEGORIES or ch in INVISIBLE_LETTERS


def _check_characters(raw: str, name: str) -> None:
    if not name:
        raise ValidationError("Please choose a username.", code="required")
    # Judged on the raw text too: NFKC folds a few of them into something else.
    if any(_invisible(ch) for ch in name) or any(_invisible(ch) for ch in (raw or "").strip()):
        raise ValidationError("Usernames cannot contain invisible or control characters.", code="invisible")
    if len(name) > MAX_LENGTH:
        raise ValidationError(f"Usernames are at most {MAX_LENGTH} characters long.", code="max_length")
    if not ALLOWED.match(name):
        raise ValidationError("Use only letters, digits and the characters . _ - @ + (no spaces).", code="invalid")


def staff_skeletons() -> dict[str, str]:
    """{skeleton: username} of every physician and administrator."""
    from apps.accounts.models import Role, User

    names = User.objects.filter(role__in=[Role.PHYSICIAN, Role.ADMIN]).values_list("username", flat=True)
    return {skeleton(name): name for name in names}


def clean_username(raw: str) -> str:
    """The normalised username, or ValidationError saying what is wrong with it."""
    name = normalize(raw)
    _check_characters(raw, name)
    if skeleton(name) in staff_skeletons():
        raise ValidationError(
            "This username is too similar to a staff account's; please choose another.", code="confusable"
        )
    return name
