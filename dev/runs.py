"""
Helpers shared by the experiment scripts dev/experiments.py, dev/recall.py and dev/sink.py: run the
trainer, continue a stopped training from its checkpoint, check that a directory was made with the
same settings, read a training log, and write and read JSON files safely.

The scripts are run as `python3 dev/x.py`; each imports this module from its own folder, whatever
the working directory (and also under `python3 -P`, which leaves the script's folder off sys.path):

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from runs import parse_log, ...
"""
import datetime, json, os, signal, subprocess, sys, threading

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the repository: the folder above dev/


class Failure(Exception):
    """A training, evaluation or check that failed. msg says what; detail (may be empty) is the
    command and the end of its stderr. str(): the detail, then the message."""

    def __init__(self, msg, detail=""):
        super().__init__(msg)
        self.msg, self.detail = msg, detail

    def __str__(self):
        return f"{self.detail}\n{self.msg}" if self.detail else self.msg


def fail(msg, cmd=None, stderr=""):
    """Stop loudly (raise Failure): a missing result must never turn into a silently shorter table.
    With cmd, the detail is the command and the last 15 lines of its stderr."""
    detail = ""
    if cmd:
        detail = "command: " + " ".join(map(str, cmd)) + "\n" + "\n".join(stderr.strip().splitlines()[-15:])
    raise Failure(msg, detail)


PRINT_LOCK = threading.Lock()


def say(msg):
    """Print one line and flush it, one line at a time: the trainings report from several threads."""
    with PRINT_LOCK:
        sys.stdout.write(msg + "\n")
        sys.stdout.flush()


class Running:
    """The trainer processes call(..., running=this) is waiting for, so that interrupt() can ask
    them all to save their checkpoint and exit (the trainer does so on SIGINT)."""

    def __init__(self):
        self.procs, self.lock = set(), threading.Lock()

    def add(self, proc):
        with self.lock:
            self.procs.add(proc)

    def discard(self, proc):
        with self.lock:
            self.procs.discard(proc)

    def interrupt(self):
        with self.lock:
            for proc in self.procs:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGINT)


def call(cmd, want_stdout=True, running=None, stop=None):
    """Run a trainer command and wait for it: (exit code, stdout, stderr). The arguments may be
    numbers (passed as str) or bytes. OMP_WAIT_POLICY=passive, so that idle OpenMP threads don't
    spin on a shared machine. want_stdout=False discards the output (stdout is then "").
    running: a Running that holds the process while it runs. stop: a threading.Event; once it is
    set no command starts (Failure "stopped")."""
    if stop is not None and stop.is_set():
        raise Failure("stopped")
    env = dict(os.environ, OMP_WAIT_POLICY="passive")
    proc = subprocess.Popen([c if isinstance(c, bytes) else str(c) for c in cmd],
                            stdout=subprocess.PIPE if want_stdout else subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env=env, encoding="utf-8", errors="replace")
    if running is not None:
        running.add(proc)
    try:
        out, err = proc.communicate()
    except KeyboardInterrupt:
        proc.wait()  # Ctrl-C reached the trainer too: it is writing its checkpoint, let it finish
        raise
    finally:
        if running is not None:
            running.discard(proc)
    return proc.returncode, out or "", err


def train_command(trainer, rdir, flags, files, extra=()):
    """(command, resuming) for the training in rdir. With rdir/model.ckpt (a training that was
    stopped saved it) the command continues it: --resume takes the settings from the checkpoint,
    files gives the data files again (--train, --val, ...). Without, it is a new training with
    flags. extra (flags allowed with --resume too: threads, periodic evaluations) goes to both."""
    ckpt = os.path.join(rdir, "model.ckpt")
    if os.path.exists(ckpt):
        return [trainer, "--resume", ckpt, "--out", rdir] + list(files) + list(extra), True
    return [trainer, "--out", rdir] + list(flags) + list(extra), False


def parse_log(path):
    """A trainer's log.txt -> dict of
      train      {step: training loss}       val    {step: validation loss}
      sinks      {step: [share of each head on the start token]} (the `sink STEP N M s_0 ...` lines)
      final      final_val_loss, None until the training has finished
      train_s    the summed step times (seconds)
      last_step  the step of the last step line, None without one
    A resumed run appends to the log and may repeat a few steps: the last line for a step wins.
    Other lines (anything a newer trainer adds) and a line still being written (the log of a
    running or interrupted training) are skipped. A missing log: no steps, no final loss."""
    train, ms, val, sinks, final, last = {}, {}, {}, {}, None, None
    if os.path.exists(path):
        with open(path) as f:
            lines = f.readlines()
        for line in lines:
            p = line.split()
            if len(p) > 1 and p[0] == "step" and p[1].isdigit():
                last = int(p[1])
            try:
                if len(p) >= 4 and p[0] == "step" and p[2] == "loss" and "ms" in p:
                    loss, t = float(p[3]), float(p[p.index("ms") + 1])
                    train[int(p[1])], ms[int(p[1])] = loss, t
                elif len(p) == 4 and p[0] == "val" and p[2] == "loss":
                    val[int(p[1])] = float(p[3])
                elif len(p) >= 4 and p[0] == "sink":
                    sinks[int(p[1])] = [float(x) for x in p[4:]]
                elif len(p) == 2 and p[0] == "final_val_loss":
                    final = float(p[1])
            except (ValueError, IndexError):
                continue
    return dict(train=train, val=val, sinks=sinks, final=final, train_s=sum(ms.values()) / 1000, last_step=last)


def write_json(path, obj):
    tmp = path + ".tmp"  # temp + rename: an interrupted write leaves the old file intact
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1, sort_keys=True)
    os.replace(tmp, path)


def read_json(path, default):
    if not os.path.exists(path):
        return default
    with open(path) as f:
        return json.load(f)


def other_settings(path, settings):
    """True if the JSON file path (a run.json or settings.json) records settings other than these.
    One directory must never mix the results of two settings: the caller stops and says so."""
    old = read_json(path, None)
    return old is not None and old != settings


def fresh_dir(base):
    """base-YYYYmmdd-HHMMSS, a directory that does not exist yet."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    path, i = f"{base}-{stamp}", 1
    while os.path.exists(path):
        i += 1
        path = f"{base}-{stamp}-{i}"
    return path
