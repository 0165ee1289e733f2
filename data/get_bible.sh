#!/usr/bin/env bash
# get_bible.sh: write the King James Bible to data/bible/kjv.txt, offline.
#
# The text comes from Debian's bible-kjv package (the `bible` program plus its
# compressed text). If `bible` is missing it is installed with apt-get when running
# as root; otherwise the script prints the command to run and exits 1.
#
# `bible gen1:1-rev22:21` prints the whole book "pretty-printed": a "Genesis 1"
# style heading (with a blank line before and after) at every chapter, each verse
# starting on its own line as "  N text", lines wrapped between words. The wrap
# width follows $COLUMNS, so we pin it with `-l 79` (bible's default) to get the
# same file everywhere. Clean-up, kept light so the text stays book-like:
#   - drop the blank line bible prints before the first heading,
#   - strip trailing spaces (two wrapped lines end with one).
# Chapter headings and verse numbers are kept. The result is plain ASCII,
# about 4.3 MB, 1,189 chapters.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
outdir="$here/bible"
out="$outdir/kjv.txt"

if ! command -v bible >/dev/null 2>&1; then
    if [ "$(id -u)" -eq 0 ]; then
        echo "get_bible.sh: installing Debian package bible-kjv" >&2
        export DEBIAN_FRONTEND=noninteractive
        if ! apt-get install -y bible-kjv </dev/null; then
            # A fresh container often has no package lists yet.
            apt-get update </dev/null
            apt-get install -y bible-kjv </dev/null
        fi
    else
        echo "get_bible.sh: the 'bible' program is missing; install it with: sudo apt-get install bible-kjv" >&2
        exit 1
    fi
fi

mkdir -p "$outdir"
tmp="$(mktemp "$outdir/kjv.txt.XXXXXX")"
trap 'rm -f "$tmp"' EXIT

# No stdin (bible would otherwise read commands from it), fixed width, whole book.
COLUMNS=80 bible -l 79 gen1:1-rev22:21 </dev/null | sed -e '1{/^$/d;}' -e 's/[[:space:]]*$//' >"$tmp"

size=$(wc -c <"$tmp")
if [ "$size" -le 1000000 ]; then
    echo "get_bible.sh: bible printed only $size bytes (expected about 4.3 MB); is bible-kjv-text installed?" >&2
    exit 1
fi
if ! head -n 1 "$tmp" | grep -q '^Genesis 1$'; then
    echo "get_bible.sh: unexpected output from bible (first line is not 'Genesis 1')" >&2
    exit 1
fi

chmod 644 "$tmp"
mv -f "$tmp" "$out"
trap - EXIT
echo "get_bible.sh: wrote $out ($size bytes)"
