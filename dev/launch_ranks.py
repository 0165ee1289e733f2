#!/usr/bin/env python3
"""launch_ranks.py: starts the ranks of a data-parallel run with torchrun's environment, for a
PyTorch whose torchrun does not start. Debian's (torch 1.13 under Python 3.11) dies at start-up
in torch.distributed.elastic with "AttributeError: 'NoneType' object has no attribute 'get'";
a process group joined through that environment works. On a current PyTorch, use torchrun.

    /usr/bin/python3 dev/launch_ranks.py --standalone --nproc_per_node 2 dev/train_swat.py ARGS
    torchrun                             --standalone --nproc_per_node 2 dev/train_swat.py ARGS

start the same two ranks. Each rank is this interpreter running SCRIPT ARGS with RANK,
WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, GROUP_RANK, MASTER_ADDR and MASTER_PORT set as
torchrun's static rendezvous sets them: RANK = node_rank * nproc_per_node + LOCAL_RANK, and the
script joins with init_process_group(init_method="env://"). Over several nodes, run it on each
with --nnodes, --node_rank, --master_addr and --master_port, as torchrun. The ranks print to
this terminal; when one fails, the others are stopped and its exit status is returned. Only
the standard library: it runs with any python3.
"""
import argparse
import os
import signal
import socket
import subprocess
import sys
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def parse(argv):
    ap = argparse.ArgumentParser(prog="launch_ranks.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("--nproc_per_node", "--nproc-per-node", type=int, default=1,
                    help="ranks on this node (default 1)")
    ap.add_argument("--nnodes", type=int, default=1, help="nodes in the run (default 1)")
    ap.add_argument("--node_rank", "--node-rank", type=int, default=0,
                    help="this node's number, 0 .. nnodes-1")
    ap.add_argument("--master_addr", "--master-addr", default="127.0.0.1", help="node 0's address")
    ap.add_argument("--master_port", "--master-port", type=int,
                    help="node 0's port (default: a free port with one node, else 29500)")
    ap.add_argument("--standalone", action="store_true", help="one node, a free port on 127.0.0.1")
    ap.add_argument("script", help="the Python script each rank runs")
    ap.add_argument("args", nargs=argparse.REMAINDER, help="its arguments")
    a = ap.parse_args(argv)
    if a.standalone and a.nnodes != 1: ap.error("--standalone is one node: leave out --nnodes")
    if a.nproc_per_node < 1 or a.nnodes < 1 or not 0 <= a.node_rank < a.nnodes:
        ap.error("need --nproc_per_node >= 1, --nnodes >= 1 and 0 <= --node_rank < --nnodes")
    if a.master_port is None:
        a.master_port = free_port() if a.nnodes == 1 else 29500
    return a


def main(argv):
    a = parse(argv)
    world = a.nnodes * a.nproc_per_node
    ranks = []
    for local in range(a.nproc_per_node):
        rank = a.node_rank * a.nproc_per_node + local
        env = dict(os.environ, RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(local),
                   LOCAL_WORLD_SIZE=str(a.nproc_per_node), GROUP_RANK=str(a.node_rank),
                   MASTER_ADDR=a.master_addr, MASTER_PORT=str(a.master_port))
        ranks.append(subprocess.Popen([sys.executable, a.script] + a.args, env=env))
    status = 0
    try:
        while ranks and status == 0:
            for p in list(ranks):
                if p.poll() is not None:
                    ranks.remove(p)
                    status = p.returncode
            time.sleep(0.05)
    except KeyboardInterrupt:
        status = 128 + signal.SIGINT
    for p in ranks:       # a rank failed (or Ctrl-C): the others would wait for it forever
        p.terminate()
    for p in ranks:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
