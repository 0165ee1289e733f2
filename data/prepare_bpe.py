#!/usr/bin/python3
"""prepare_bpe: train a BPE vocabulary on a text and write subword token shards.

  prepare_bpe.py [--vocab-size V] [--val-fraction X] [--character-coverage C] INPUT... OUTDIR
  prepare_bpe.py --encode TEXT MODEL         print TEXT's token ids (MODEL: OUTDIR or its spm.model)
  prepare_bpe.py --decode IDS TOKENIZER      write the bytes of IDS ("5 17 300" or "5,17,300")
  prepare_bpe.py --decode-shard SHARD TOKENIZER   write the bytes of a shard's tokens
  prepare_bpe.py --check-deps                exit 0 if sentencepiece can be imported (installs it as root)

Run it with /usr/bin/python3: SentencePiece is Debian's python3-sentencepiece, a module of that
Python. Another interpreter that cannot import it is told so first, and nothing is installed
when the package is installed already.

TOKENIZER is OUTDIR (its tokenizer.bin) or any tokenizer file in llm.c's format, versions 1
and 2 (so --decode works for gpt2_tokenizer.bin too).

Training: the INPUT files (or "-" for stdin, once) are concatenated byte for byte, like cat.
The last X of those bytes (rounded to the nearest byte) is the validation text and the rest
the training text: the same split as prepare_text.c, so val.bin holds exactly the bytes of
prepare_text's val.bin. SentencePiece (Debian's python3-sentencepiece) learns a BPE
vocabulary of V pieces from the training text only, single-threaded and without sampling,
so the same input and options give the same files everywhere. The characters with a piece of
their own are the most frequent ones covering C of the training text (--character-coverage,
default 0.9995; the space always; at most half of the learned pieces); SentencePiece never sees
the others, which become byte pieces. Each split is then encoded on its own and the whole
corpus is decoded back with the tokenizer file's bytes and compared with the input: any
difference is an error and nothing is written.

Vocabulary layout (fixed):
  id 0        <unk>  never produced (byte fallback covers every byte); text "<unk>"
  id 1        <s>    the start token: reserved for the trainer's --bos 1, never in the
                     shards; it is the end-of-text id in tokenizer.bin's header; text "<s>"
  ids 2..257  the 256 byte pieces <0x00>..<0xFF>, in byte order; text: that one byte
  ids 258..   the learned pieces (characters and merges); text: the piece's UTF-8 with
              SentencePiece's U+2581 turned back into a space
The control pieces keep their SentencePiece names as text (as llm.c's GPT-2 file keeps
"<|endoftext|>"), so they are visible if a sampler prints them.

Canonical encoding (the shards and --encode use the same function): the bytes are decoded as
UTF-8 with Python's surrogateescape; the text is cut into lines (each keeps its "\\n"), lines
longer than 4096 characters into 4096-character pieces, and SentencePiece encodes each piece
on its own (with identity normalization, no dummy prefix, spaces kept as they are). Two things
SentencePiece cannot carry become byte pieces directly: bytes that are not valid UTF-8, and the
character U+2581 itself (SentencePiece would decode it as a space); so does the space when the
training text had none (then the model has no piece for it). Newlines are never in the training
sentences, so "\\n" is always the byte piece <0x0A>.

Output in OUTDIR (created if missing; its parent must exist):
  train.bin, val.bin  shards: 256 int32 header [20240520, 1, N, 0...], then N uint16 tokens
  tokenizer.bin       llm.c's tokenizer file: 256 uint32 header [20240328, 2, V, 1 (<s>), 0...],
                      then per id: one uint8 length n >= 1 and n bytes
  spm.model           the SentencePiece model (for --encode)
All numbers little-endian. Files are written to NAME.tmp, fsync'ed and renamed at the end.
On any error: one line "prepare_bpe: WHAT: PROBLEM" on stderr, exit status 1.
"""

import os
import re
import shutil
import struct
import subprocess
import sys
from array import array
from collections import Counter

SHARD_MAGIC = 20240520
SHARD_VERSION = 1
TOKENIZER_MAGIC = 20240328
TOKENIZER_VERSION = 2
HEADER_INTS = 256
MIN_VOCAB = 260  # 2 control pieces + 256 byte pieces + at least 2 learned pieces
MAX_VOCAB = 65536  # ids must fit in uint16
MIN_TOKENS = 2  # a shard needs at least one (input, target) pair
UNK_ID = 0
BOS_ID = 1
FIRST_BYTE_ID = 2
SEGMENT_CHARS = 4096  # longest piece of a line given to SentencePiece in one call
APT_LINE = "sudo apt-get install python3-sentencepiece"

USAGE = """usage: prepare_bpe.py [--vocab-size V] [--val-fraction X] [--character-coverage C] INPUT... OUTDIR
       prepare_bpe.py --encode TEXT MODEL
       prepare_bpe.py --decode IDS TOKENIZER
       prepare_bpe.py --decode-shard SHARD TOKENIZER
       prepare_bpe.py --check-deps

Trains a BPE vocabulary of V pieces (default 4096, from 260 to 65536) with SentencePiece on the
first (1 - X) of the concatenated INPUT files ("-" reads stdin) and writes to OUTDIR:
  train.bin, val.bin   token shards (the first 1 - X and the last X of the input bytes; X in (0,1),
                       default 0.05)
  tokenizer.bin        llm.c's tokenizer file (version 2, end-of-text id 1 = <s>)
  spm.model            the SentencePiece model
C is the character coverage (default 0.9995): the most frequent characters that make up C of
the training text get pieces (the space always, and at most half of the V - 258 learned pieces);
rarer characters are byte pieces.
Id 1 (<s>) is the start token for the trainer (--bos 1); the shards never contain it.

--encode prints TEXT's ids (space-separated) as the shards would hold them; MODEL is OUTDIR or
a spm.model file. --decode writes the bytes of IDS and --decode-shard those of a shard's
tokens to stdout; TOKENIZER is OUTDIR or a tokenizer file in llm.c's format (versions 1, 2).
"""


class Failure(Exception):
    """An error reported as one line "prepare_bpe: WHAT: PROBLEM"."""

    def __init__(self, what, problem):
        super().__init__(f"{what}: {problem}")


# ---------------------------------------------------------------- sentencepiece, installed

def import_sentencepiece(install=True):
    """Return the sentencepiece module; as root, install Debian's package when it is missing.

    Debian's python3-sentencepiece is a module of Debian's Python, /usr/bin/python3: another
    interpreter is told to run the script with that one (installing cannot help it), and a
    package that is installed is never installed again."""
    try:
        import sentencepiece  # noqa: PLC0415
        return sentencepiece
    except ImportError as e:
        error = e
    debian = "/usr/bin/python3"
    foreign = os.path.exists(debian) and os.path.realpath(sys.executable) != os.path.realpath(debian)
    installed = package_installed()
    if foreign:
        also = "" if installed else f" (and if that has no sentencepiece either: {APT_LINE})"
        raise Failure("sentencepiece", f"run it with /usr/bin/python3 (this is {sys.executable}, "
                                       f"which cannot import sentencepiece){also}")
    if installed:
        raise Failure("sentencepiece", f"python3-sentencepiece is installed but cannot be imported ({error})")
    if install and os.geteuid() == 0 and shutil.which("apt-get"):
        print("prepare_bpe: installing python3-sentencepiece with apt-get", file=sys.stderr)
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        cmd = ["apt-get", "install", "-y", "-qq", "python3-sentencepiece"]
        if subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL).returncode != 0:
            subprocess.run(["apt-get", "update", "-qq"], env=env, stdout=subprocess.DEVNULL)
            subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL)
        import importlib
        importlib.invalidate_caches()
        try:
            import sentencepiece  # noqa: PLC0415
            return sentencepiece
        except ImportError:
            pass
    raise Failure("sentencepiece", f"the Python module is missing: run '{APT_LINE}'")


def package_installed():
    """Whether dpkg lists Debian's python3-sentencepiece as installed."""
    if not shutil.which("dpkg-query"):
        return False
    cmd = ["dpkg-query", "-W", "-f=${Status}", "python3-sentencepiece"]
    done = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    return done.returncode == 0 and done.stdout.decode().endswith(" installed")


# ---------------------------------------------------------------- canonical encoding

# A character SentencePiece cannot carry (U+2581, or a byte that is not valid UTF-8, which
# surrogateescape turns into U+DC80..U+DCFF), or a run of at most SEGMENT_CHARS ordinary
# characters ending at (and including) a newline. The second form also treats the space as
# such a character, for a model without a piece for the space (see encode).
_SEGMENT = re.compile("(?P<raw>[\u2581\udc80-\udcff])|[^\u2581\udc80-\udcff\n]{1,%d}\n?|\n" % SEGMENT_CHARS)
_SEGMENT_RAW_SPACE = re.compile("(?P<raw>[ \u2581\udc80-\udcff])|[^ \u2581\udc80-\udcff\n]{1,%d}\n?|\n"
                                % SEGMENT_CHARS)


def segments(data, raw_space=False):
    """Cut bytes into the pieces encoded on their own: str (for SentencePiece) or int (a raw byte)."""
    text = data.decode("utf-8", "surrogateescape")
    out = []
    for m in (_SEGMENT_RAW_SPACE if raw_space else _SEGMENT).finditer(text):
        s = m.group()
        if m.lastgroup != "raw":
            out.append(s)
        elif "\udc80" <= s <= "\udcff":
            out.append(ord(s) - 0xDC00)  # the byte that was not valid UTF-8
        else:
            out.extend(s.encode("utf-8"))  # U+2581's three bytes, or the space's one
    return out


def encode(sp, data):
    """The canonical token ids of bytes `data` (array of uint16).

    SentencePiece turns spaces into U+2581; a model whose training text had no space has no
    piece for it and would fall back to U+2581's three bytes, so such a model's spaces are
    cut out and encoded as the byte piece <0x20> here."""
    raw_space = sp.piece_to_id("\u2581") == UNK_ID
    ids = array("H")
    batch = []

    def flush():
        for piece_ids in sp.encode(batch):
            ids.extend(piece_ids)
        batch.clear()

    for p in segments(data, raw_space):
        if isinstance(p, int):
            if batch:
                flush()
            ids.append(FIRST_BYTE_ID + p)
        else:
            batch.append(p)
            if len(batch) == 8192:
                flush()
    if batch:
        flush()
    return ids


def training_sentences(data):
    """Sentences for the vocabulary: the ordinary segments without their newline."""
    for p in segments(data):
        if isinstance(p, str):
            s = p.rstrip("\n")
            if s:
                yield s


# ---------------------------------------------------------------- tokenizer file

def token_bytes_table(sp):
    """Each id's bytes, as the tokenizer file stores them; checks the fixed layout."""
    V = sp.get_piece_size()
    if sp.piece_to_id("<unk>") != UNK_ID or sp.piece_to_id("<s>") != BOS_ID:
        raise Failure("spm.model", "unexpected layout: <unk> must be id 0 and <s> id 1")
    table = []
    for i in range(V):
        piece = sp.id_to_piece(i)
        if sp.is_byte(i):
            b = bytes([int(piece[3:5], 16)])
            if i != FIRST_BYTE_ID + b[0]:
                raise Failure("spm.model", f"byte piece {piece} at id {i}, expected {FIRST_BYTE_ID + b[0]}")
        elif sp.is_control(i) or sp.is_unknown(i):
            b = piece.encode("utf-8")  # "<unk>", "<s>": the names, visible when printed
        else:
            b = piece.replace("\u2581", " ").encode("utf-8")
        if not 1 <= len(b) <= 255:
            raise Failure("spm.model", f"piece {i} is {len(b)} bytes long (the tokenizer file allows 1..255)")
        table.append(b)
    return table


def tokenizer_file_bytes(table, eot):
    header = [0] * HEADER_INTS
    header[0:4] = [TOKENIZER_MAGIC, TOKENIZER_VERSION, len(table), eot]
    out = bytearray(struct.pack("<256I", *header))
    for b in table:
        out.append(len(b))
        out += b
    return bytes(out)


def read_headed(path, what):
    """The bytes of a file that starts with a header of 256 int32 (a tokenizer or a shard)."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise Failure(path, e.strerror) from None
    if len(raw) < 4 * HEADER_INTS:
        raise Failure(path, f"too short for a {what} header ({len(raw)} bytes)")
    return raw


def read_tokenizer(path):
    """Read a tokenizer file (llm.c's format, versions 1 and 2): (list of bytes, eot or None)."""
    if os.path.isdir(path):
        path = os.path.join(path, "tokenizer.bin")
    raw = read_headed(path, "tokenizer")
    header = struct.unpack_from("<256I", raw)
    if header[0] != TOKENIZER_MAGIC:
        raise Failure(path, f"bad magic {header[0]} (a tokenizer file starts with {TOKENIZER_MAGIC})")
    if header[1] not in (1, 2):
        raise Failure(path, f"unsupported version {header[1]} (1 or 2)")
    V = header[2]
    if not 1 <= V <= MAX_VOCAB:
        raise Failure(path, f"vocabulary size {V} out of range 1..{MAX_VOCAB}")
    eot = header[3] if header[1] == 2 else None
    if eot is not None and eot >= V:
        raise Failure(path, f"end-of-text id {eot} >= vocabulary size {V}")
    table, pos = [], 4 * HEADER_INTS
    for i in range(V):
        if pos >= len(raw):
            raise Failure(path, f"truncated at token {i} of {V}")
        n = raw[pos]
        if n == 0:
            raise Failure(path, f"token {i} has length 0")
        if pos + 1 + n > len(raw):
            raise Failure(path, f"truncated in token {i} of {V}")
        table.append(raw[pos + 1:pos + 1 + n])
        pos += 1 + n
    if pos != len(raw):
        raise Failure(path, f"{len(raw) - pos} bytes after the last token")
    return table, eot


# ---------------------------------------------------------------- shards

def shard_bytes(ids):
    header = [0] * HEADER_INTS
    header[0:3] = [SHARD_MAGIC, SHARD_VERSION, len(ids)]
    body = array("H", ids)
    if sys.byteorder != "little":
        body.byteswap()
    return struct.pack("<256i", *header) + body.tobytes()


def read_shard(path):
    raw = read_headed(path, "shard")
    header = struct.unpack_from("<256i", raw)
    if header[0] != SHARD_MAGIC or header[1] != SHARD_VERSION:
        raise Failure(path, f"not a shard (magic {header[0]}, version {header[1]})")
    n = header[2]
    if n < 0 or len(raw) != 4 * HEADER_INTS + 2 * n:
        raise Failure(path, f"header says {n} tokens but the file holds {(len(raw) - 4 * HEADER_INTS) / 2:g}")
    ids = array("H")
    ids.frombytes(raw[4 * HEADER_INTS:])
    if sys.byteorder != "little":
        ids.byteswap()
    return ids


def decode(table, ids, where="ids"):
    V = len(table)
    for k, t in enumerate(ids):
        if t >= V:
            raise Failure(where, f"token {k} is {t}, not below the vocabulary size {V}")
    return b"".join([table[t] for t in ids])


# ---------------------------------------------------------------- files

def write_files_atomically(outdir, files):
    """Write {name: bytes} to OUTDIR/name.tmp, fsync, then rename all; nothing is left on failure."""
    try:
        os.mkdir(outdir)
    except FileExistsError:
        pass
    except OSError as e:
        raise Failure(outdir, e.strerror) from None
    tmps, current = [], outdir
    try:
        for name, content in files.items():
            current = os.path.join(outdir, name + ".tmp")
            tmps.append(current)
            with open(current, "wb") as f:
                f.write(content)
                f.flush()
                os.fsync(f.fileno())
        for name in files:
            current = os.path.join(outdir, name)
            os.replace(current + ".tmp", current)
    except OSError as e:
        for tmp in tmps:
            try:
                os.remove(tmp)
            except OSError:
                pass
        raise Failure(current, e.strerror) from None


def read_inputs(paths):
    chunks = []
    for p in paths:
        if p == "-":
            chunks.append(sys.stdin.buffer.read())
            continue
        if os.path.isdir(p):
            raise Failure(p, "is a directory")
        try:
            with open(p, "rb") as f:
                chunks.append(f.read())
        except OSError as e:
            raise Failure(p, e.strerror) from None
    return b"".join(chunks)


def sentencepiece_problem(e):
    """SentencePiece's error text without its "Internal: ./src/FILE(LINE) [CONDITION]" prefix."""
    msg = str(e).strip().splitlines()[-1] if str(e).strip() else ""
    return re.sub(r"^\w+: \S+\(\d+\) \[.*?\]\s*", "", msg)


# ---------------------------------------------------------------- commands

def kept_characters(sentences, vocab_size, coverage):
    """The characters that get a piece of their own: the most frequent ones (ties in code point
    order) until they cover `coverage` of all character occurrences, and at most half of the
    learned pieces, so that a text with many rare characters (say random bytes, or a large
    alphabet at a small V) still leaves room for merges. The others are byte pieces."""
    counts = Counter()
    for s in sentences:
        counts.update(s)
    total = sum(counts.values())
    cap = (vocab_size - FIRST_BYTE_ID - 256) // 2
    keep, covered = set(), 0
    # the space first: without a piece for it SentencePiece would byte-encode U+2581
    for c, n in sorted(counts.items(), key=lambda kv: (kv[0] != " ", -kv[1], kv[0])):
        if len(keep) >= cap or covered >= coverage * total:
            break
        keep.add(c)
        covered += n
    return keep, set(counts) - keep


def train_vocabulary(spm, train_text, vocab_size, coverage):
    """Train the BPE model on the training text; returns (model bytes, kept and dropped chars)."""
    import io
    sentences = list(training_sentences(train_text))
    if not sentences:
        raise Failure("training text", "holds no valid UTF-8 text to learn pieces from")
    keep, dropped = kept_characters(sentences, vocab_size, coverage)
    if dropped:  # cut the sentences at the dropped characters: SentencePiece never sees them
        cut = re.compile("[%s]+" % "".join(re.escape(c) for c in sorted(dropped)))
        sentences = [p for s in sentences for p in cut.split(s) if p]
    model = io.BytesIO()
    spm.set_random_generator_seed(1234)
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(sentences), model_writer=model,
            model_type="bpe", vocab_size=vocab_size, byte_fallback=True,
            character_coverage=1.0, normalization_rule_name="identity",
            add_dummy_prefix=False, remove_extra_whitespaces=False,
            allow_whitespace_only_pieces=True, split_by_whitespace=True, split_digits=False,
            unk_id=UNK_ID, bos_id=BOS_ID, eos_id=-1, pad_id=-1,
            max_sentence_length=4 * SEGMENT_CHARS + 16, input_sentence_size=0,
            shuffle_input_sentence=False, hard_vocab_limit=True,
            num_threads=1, minloglevel=2)
    except (RuntimeError, OSError) as e:
        problem = sentencepiece_problem(e) or f"training failed ({type(e).__name__})"
        if "too high" in problem:
            problem += " (the training text is too small for this many pieces: lower --vocab-size)"
        raise Failure("sentencepiece", problem) from None
    return model.getvalue(), len(keep), len(dropped)


def first_difference(a, b):
    n = min(len(a), len(b))
    lo = 0
    while lo < n and a[lo:lo + 65536] == b[lo:lo + 65536]:
        lo += 65536
    while lo < n and a[lo] == b[lo]:
        lo += 1
    return lo


def cmd_prepare(inputs, outdir, vocab_size, val_fraction, coverage):
    spm = import_sentencepiece()
    if inputs.count("-") > 1:
        raise Failure("-", "stdin can be read only once")
    data = read_inputs(inputs)
    what = inputs[0] if len(inputs) == 1 else f"{len(inputs)} inputs"
    if not data:
        raise Failure(what, "input is empty")
    n_val = int(len(data) * val_fraction + 0.5)
    n_train = len(data) - n_val
    if n_train < MIN_TOKENS or n_val < MIN_TOKENS:
        raise Failure(what, f"too small to split ({len(data)} bytes with --val-fraction {val_fraction:g} gives "
                            f"{n_train} train + {n_val} val bytes; each split needs at least {MIN_TOKENS})")
    train_text, val_text = data[:n_train], data[n_train:]
    try:  # OUTDIR now, so that a bad one fails before the training
        os.mkdir(outdir)
    except FileExistsError:
        if not os.path.isdir(outdir):
            raise Failure(outdir, "exists and is not a directory") from None
    except OSError as e:
        raise Failure(outdir, e.strerror) from None

    model, n_kept, n_dropped = train_vocabulary(spm, train_text, vocab_size, coverage)
    sp = spm.SentencePieceProcessor(model_proto=model)
    if sp.get_piece_size() != vocab_size:
        raise Failure("sentencepiece", f"made {sp.get_piece_size()} pieces, not {vocab_size}")
    table = token_bytes_table(sp)

    splits = {"train.bin": encode(sp, train_text), "val.bin": encode(sp, val_text)}
    for name, ids in splits.items():
        if len(ids) < MIN_TOKENS:
            raise Failure(name, f"only {len(ids)} tokens (at least {MIN_TOKENS} needed)")
        if len(ids) > 2**31 - 1:
            raise Failure(name, "more than 2^31 - 1 tokens")
        bad = [t for t in (UNK_ID, BOS_ID) if t in ids]
        if bad:
            raise Failure(name, f"holds reserved id {bad[0]}")
    # The whole corpus, decoded with the tokenizer file's bytes, must be the input exactly.
    back = decode(table, splits["train.bin"]) + decode(table, splits["val.bin"])
    if back != data:
        k = first_difference(back, data)
        raise Failure("round trip", f"decoding the shards differs from the input at byte {k} "
                                    f"(input {data[k:k + 12]!r}, decoded {back[k:k + 12]!r}); nothing written")

    write_files_atomically(outdir, {
        "train.bin": shard_bytes(splits["train.bin"]),
        "val.bin": shard_bytes(splits["val.bin"]),
        "tokenizer.bin": tokenizer_file_bytes(table, BOS_ID),
        "spm.model": model,
    })
    nt, nv = len(splits["train.bin"]), len(splits["val.bin"])
    print(f"prepare_bpe: {what} ({len(data)} bytes), V = {vocab_size} -> {outdir}: "
          f"train.bin {nt} tokens ({n_train} bytes, {n_train / nt:.3f} bytes/token), "
          f"val.bin {nv} tokens ({n_val} bytes, {n_val / nv:.3f} bytes/token), "
          f"tokenizer.bin, spm.model; {n_kept} characters have pieces, {n_dropped} rarer ones are bytes; "
          f"round trip exact; start token --bos {BOS_ID}")


def load_model(path):
    spm = import_sentencepiece()
    if os.path.isdir(path):
        path = os.path.join(path, "spm.model")
    try:
        with open(path, "rb") as f:
            proto = f.read()
    except OSError as e:
        raise Failure(path, e.strerror) from None
    try:
        sp = spm.SentencePieceProcessor(model_proto=proto)
    except (RuntimeError, OSError) as e:
        detail = sentencepiece_problem(e)
        raise Failure(path, "not a SentencePiece model" + (f" ({detail})" if detail else "")) from None
    token_bytes_table(sp)  # checks the layout prepare_bpe writes
    return sp


def parse_ids(text):
    out = []
    for w in re.split(r"[\s,]+", text.strip()):
        if not w:
            continue
        if not re.fullmatch(r"[0-9]+", w):
            raise Failure("--decode", f"'{w}' is not a token id")
        out.append(int(w))
    return out


def parse_number(name, value, kind, lo, hi, lo_open=False, hi_open=False):
    try:
        x = kind(value)
    except ValueError:
        x = None
    if x is None or x != x or (x <= lo if lo_open else x < lo) or (x >= hi if hi_open else x > hi):
        rng = f"{'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
        raise Failure(name, f"bad value '{value}' (must be a number in {rng})")
    return x


def main(argv):
    opts = {"--vocab-size": "4096", "--val-fraction": "0.05", "--character-coverage": "0.9995"}
    mode, mode_arg, positional = None, None, []
    i = 0
    while i < len(argv):
        a = argv[i]
        name, eq, val = a.partition("=")
        if a in ("-h", "--help"):
            sys.stdout.write(USAGE)
            return 0
        if a == "--check-deps":
            import_sentencepiece()
            return 0
        if name in opts or name in ("--encode", "--decode", "--decode-shard"):
            if not eq:
                if i + 1 >= len(argv):
                    raise Failure(name, "missing value")
                i += 1
                val = argv[i]
            if name in opts:
                opts[name] = val
            else:
                if mode:
                    raise Failure(name, f"cannot be combined with {mode}")
                mode, mode_arg = name, val
        elif a.startswith("-") and a != "-":
            raise Failure(a, "unknown option (try --help)")
        else:
            positional.append(a)
        i += 1

    if mode:
        if len(positional) != 1:
            what = "MODEL" if mode == "--encode" else "TOKENIZER"
            raise Failure(mode, f"needs exactly one {what} argument (try --help)")
        if mode == "--encode":
            sp = load_model(positional[0])
            text = os.fsencode(mode_arg)  # the argument's bytes, even if not UTF-8
            if mode_arg == "-":
                text = sys.stdin.buffer.read()
            print(" ".join(map(str, encode(sp, text))))
            return 0
        table, _ = read_tokenizer(positional[0])
        if mode == "--decode":
            out = decode(table, parse_ids(mode_arg), "--decode")
        else:
            out = decode(table, read_shard(mode_arg), mode_arg)
        sys.stdout.buffer.write(out)
        sys.stdout.buffer.flush()
        return 0

    if len(positional) < 2:
        raise Failure("usage", "prepare_bpe.py [--vocab-size V] INPUT... OUTDIR (try --help)")
    vocab_size = parse_number("--vocab-size", opts["--vocab-size"], int, MIN_VOCAB, MAX_VOCAB)
    frac = parse_number("--val-fraction", opts["--val-fraction"], float, 0, 1, True, True)
    coverage = parse_number("--character-coverage", opts["--character-coverage"], float, 0, 1, True)
    cmd_prepare(positional[:-1], positional[-1], vocab_size, frac, coverage)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except Failure as e:
        print(f"prepare_bpe: {e}", file=sys.stderr)
        sys.exit(1)
    except BrokenPipeError:  # e.g. --decode-shard ... | head
        sys.stderr.close()
        sys.exit(1)
    except MemoryError:
        print("prepare_bpe: out of memory", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
