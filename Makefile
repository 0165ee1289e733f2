# The two commands of the README:  make train  (prepare the default data, train)  and  make test.
CC ?= cc
# -ffp-contract=fast lets the compiler fuse a*b+c into one FMA (strict ISO C mode would not)
CFLAGS ?= -std=c11 -O3 -ffp-contract=fast -Wall -Wextra
# -march=native (with full-width vectors on AVX-512) and OpenMP where the compiler supports
# them; the trainer also builds and runs without either
NATIVE := $(shell $(CC) -march=native -x c -c /dev/null -o /dev/null 2>/dev/null && echo -march=native \
            && $(CC) -mprefer-vector-width=512 -x c -c /dev/null -o /dev/null 2>/dev/null && echo -mprefer-vector-width=512)
OPENMP := $(shell printf 'int main(void){return 0;}' | $(CC) -fopenmp -x c - -o /dev/null 2>/dev/null && echo -fopenmp)
LDLIBS = -lm
# libgomp's idle threads spin 300,000 turns of a pause loop (about 10 ms) before they sleep:
# on a busy machine they hold the cores that others need (two trainings at once ran 5.5x
# slower than --threads 1). 1000 turns (about 20 us) keep the speed of an idle machine and
# give the cores back on a busy one (dev/PERFORMANCE.md). Every target runs with it; give it
# to runs by hand on a shared machine too (GOMP_SPINCOUNT=1000 ./train_swat ...).
ifndef OMP_WAIT_POLICY
export GOMP_SPINCOUNT ?= 1000
endif
PYTHON ?= /usr/bin/python3
DATA = data/bible
STATES = dev/states

.PHONY: all train train-bpe test test-asan fuzz data states clean bench bench-gen kernel-bench compilers experiments recall attention-figures attention-page sink linear
all: train_swat test_swat test_swat_plain data/prepare_text

train_swat: train_swat.c Makefile
	$(CC) $(CFLAGS) $(NATIVE) $(OPENMP) -o $@ $< $(LDLIBS)

# The trainer on the reference kernels (matmul, attention and decoding as plain loops, see
# matmul_forward_naive, attention_forward_naive and infer_step_naive): slow, for reading and
# stepping through.
train_swat_naive: train_swat.c Makefile
	$(CC) $(CFLAGS) -g $(OPENMP) -DSWAT_NAIVE -o $@ $< $(LDLIBS)

# The same file built with MPI for data-parallel training (mpirun -np N ./train_swat_mpi ...);
# Debian's OpenMPI is installed when run as root, else the apt-get line is printed.
train_swat_mpi: train_swat.c Makefile
	@command -v mpicc >/dev/null || { [ "$$(id -u)" = 0 ] && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    openmpi-bin libopenmpi-dev >/dev/null; } || { echo "train_swat_mpi needs MPI: sudo apt-get install openmpi-bin libopenmpi-dev"; exit 1; }
	mpicc $(CFLAGS) $(NATIVE) $(OPENMP) -DSWAT_MPI -o $@ $< $(LDLIBS)

# the tests include train_swat.c without its main, which leaves some helpers unused
test_swat: test_swat.c train_swat.c
	$(CC) $(CFLAGS) -Wno-unused-function -Wno-unused-variable $(NATIVE) $(OPENMP) -o $@ test_swat.c $(LDLIBS)

# the same suite with gemm's plain C register tile instead of the vector-extension one
test_swat_plain: test_swat.c train_swat.c
	$(CC) $(CFLAGS) -Wno-unused-function -Wno-unused-variable $(NATIVE) $(OPENMP) -DSWAT_PLAIN_C -o $@ test_swat.c $(LDLIBS)

data/prepare_text: data/prepare_text.c
	$(CC) -std=c11 -O2 -Wall -Wextra -o $@ $<

# The default dataset: the King James Bible from Debian's bible-kjv package, as bytes.
data: $(DATA)/train.bin
$(DATA)/train.bin: data/prepare_text
	bash data/get_bible.sh
	data/prepare_text $(DATA)/kjv.txt $(DATA)

# The default model: 4 layers, width 256, 8 heads, window 64 on sequences of 256 bytes.
TRAIN_FLAGS ?=
train: train_swat data
	./train_swat --train $(DATA)/train.bin --val $(DATA)/val.bin --out out/bible $(TRAIN_FLAGS)

# The same model on subword tokens: a 4096-token BPE vocabulary of the Bible made offline by
# SentencePiece (data/prepare_bpe.py; id 1 is the start token), trained with it, then its
# validation loss in nats per byte, comparable to the byte model's loss (one byte a token).
BPE = $(DATA)/bpe4096
BPE_FLAGS ?=
$(BPE)/train.bin: | $(DATA)/train.bin
	$(PYTHON) data/prepare_bpe.py --vocab-size 4096 $(DATA)/kjv.txt $(BPE)
train-bpe: train_swat $(BPE)/train.bin
	./train_swat --train $(BPE)/train.bin --val $(BPE)/val.bin --vocab 4096 --bos 1 --tokenizer $(BPE)/tokenizer.bin \
	    --out out/bible-bpe $(BPE_FLAGS)
	./train_swat --init out/bible-bpe/model.ckpt --eval $(BPE)/val.bin --tokenizer $(BPE)/tokenizer.bin

# Debug states of the PyTorch reference (dev/train_swat.py) for the cross-check in test_swat.
# Without PyTorch the cross-check reports SKIPPED; as root the script installs it.
states:
	@bash dev/make_states.sh $(PYTHON) $(STATES)

# Every suite prints "N passed, M failed[, K skipped]"; the last line adds them up.
# EXTRA_TESTS adds suites (CI adds the sanitizer builds and a short fuzzing pass).
test: train_swat train_swat_naive test_swat test_swat_plain data/prepare_text states data
	@if command -v mpicc >/dev/null; then $(MAKE) -s train_swat_mpi; else echo "no mpicc: the MPI checks of tests/mpi.sh will be SKIPPED"; fi
	@bash dev/run_tests.sh "./test_swat" "./test_swat_plain" "bash data/test_prepare.sh" "bash data/test_bpe.sh" \
	    "bash dev/crosscheck.sh" "bash dev/test_plot_log.sh" "bash tests/reliability.sh" "bash tests/flags.sh" \
	    "bash tests/mpi.sh" "bash tests/naive.sh" "bash tests/doc_names.sh" "bash tests/shape.sh" "bash tests/dev_tools.sh" \
	    "bash tests/subword.sh" "bash tests/attention_page.sh" "bash tests/retnet.sh" \
	    "bash tests/sink_chapter.sh" \
	    "bash dev/test_repro.sh" "bash tests/torchrun.sh" $(EXTRA_TESTS)

# The test suite and the trainer under AddressSanitizer and UndefinedBehaviorSanitizer.
SANITIZE = -std=c11 -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
test_swat_asan: test_swat.c train_swat.c
	$(CC) $(SANITIZE) -Wall -Wextra -Wno-unused-function -Wno-unused-variable $(OPENMP) -o $@ test_swat.c $(LDLIBS)
test-asan: train_swat test_swat_asan states
	@bash dev/run_tests.sh "./test_swat_asan" "bash tests/asan.sh"

# libFuzzer on the checkpoint loader, the shard loader and the command line (clang and
# libclang-rt-14-dev); FUZZ_SECONDS per target.
FUZZ_SECONDS ?= 600
fuzz:
	@bash fuzz/run.sh $(FUZZ_SECONDS)

# Training speed against the measured peak and PyTorch (a benchmark, not a test).
# BASELINE=<commit>: only that commit's trainer against this tree's, alternated (dev/bench_baseline.sh).
ifneq ($(BASELINE),)
bench:
	@BASELINE='$(BASELINE)' NEW_SRC='$(NEW_SRC)' SWAT_BIN='$(SWAT_BIN)' CC='$(CC)' CFLAGS='$(CFLAGS)' \
	    NATIVE='$(NATIVE)' OPENMP='$(OPENMP)' LDLIBS='$(LDLIBS)' bash dev/bench_baseline.sh
else
bench: train_swat data
	@bash dev/bench.sh
	@if command -v mpicc >/dev/null; then $(MAKE) -s train_swat_mpi; fi
	@bash dev/bench_mpi.sh
	@bash dev/bench_vocab.sh
endif

# Where a training step's time goes, kernel by kernel (dev/kernel_bench.c), and the same step
# built by gcc and clang for AVX-512, AVX2 and SSE2 (dev/compilers.sh). Benchmarks, not tests.
dev/kernel_bench: dev/kernel_bench.c train_swat.c
	$(CC) $(CFLAGS) -Wno-unused-function -Wno-unused-variable $(NATIVE) $(OPENMP) -o $@ dev/kernel_bench.c $(LDLIBS)
kernel-bench: dev/kernel_bench
	dev/kernel_bench
compilers:
	@bash dev/compilers.sh

# Inference and busy machines (a benchmark, not a test): generation against llama2.c's run.c,
# --samples 8, memory over 1k-64k tokens, --stream against chunked --eval, and the default
# threads against --threads 1 beside a busy process and with two trainings at once.
bench-gen: train_swat data
	@bash dev/bench_gen.sh

# The paper's experiments at CPU scale (dev/experiments.py): MODE=quick (under 20 minutes on
# 2 cores) or MODE=full (reproduces dev/results/full, ~80 min). Trains into a fresh
# dev/results/MODE-TIMESTAMP, then prints the new numbers next to the committed ones;
# OUT=DIR resumes a stopped run (the command to do so is printed).
MODE ?= quick
experiments: train_swat data
	@bash dev/need_matplotlib.sh $(PYTHON)
	$(PYTHON) dev/experiments.py --mode $(MODE) $(if $(OUT),--out $(OUT))

# Key recall against distance: information beyond the window (dev/recall.py). Trains into a
# fresh dev/results/recall-TIMESTAMP and prints the new numbers next to dev/results/recall's;
# SEEDS=1,2,3 gives mean and spread over seeds; OUT=DIR resumes.
recall: train_swat
	@bash dev/need_matplotlib.sh $(PYTHON)
	$(PYTHON) dev/recall.py $(if $(SEEDS),--seeds $(SEEDS)) $(if $(OUT),--out $(OUT))

# The attention sink (dev/sink.py, issue 13): MODE=quick (under 20 minutes, dev/results/sink/quick)
# or MODE=full (the committed dev/results/sink); resumable, OUT=DIR for another folder.
sink: train_swat data
	@bash dev/need_matplotlib.sh $(PYTHON)
	$(PYTHON) dev/sink.py --mode $(MODE) $(if $(OUT),--out $(OUT))

# SWAT against a linear recurrent model (dev/linear.py, doc/linear.md): MODE=quick (under 20
# minutes) or MODE=full (dev/results/retnet); OUT=DIR resumes; JOBS=2 trains two at a time.
linear: train_swat data
	@bash dev/need_matplotlib.sh $(PYTHON)
	$(PYTHON) dev/linear.py --mode $(MODE) $(if $(OUT),--out $(OUT)) $(if $(JOBS),--jobs $(JOBS))

# The attention maps in dev/results/attention (needs make train and the full experiment).
attention-figures: train_swat data
	@bash dev/need_matplotlib.sh $(PYTHON)
	bash dev/attention_figures.sh

# The attention explorer pages in dev/results/attention, their screenshots and the dump rows
# they are tested against: make train's model (MODEL=CKPT for another) and, when make sink's
# checkpoints are there, the sink chapter's two models (needs chromium).
attention-page: train_swat data
	@bash dev/need_matplotlib.sh $(PYTHON)
	PYTHON=$(PYTHON) bash dev/attention_page_example.sh

clean:
	rm -f train_swat train_swat_naive train_swat_mpi test_swat test_swat_plain test_swat_asan data/prepare_text dev/kernel_bench
	rm -rf $(STATES) fuzz/build
