#!/bin/sh
# Produces every number and figure of docs/ANALYSIS.md from the runs of docs/train_runs.sh.
# Two processes at a time, one thread each (shared 2-core machine).
set -e
mkdir -p logs
A="python -m neuralode_rnn.cli"   # the installed `neuralode-rnn` is the same command
mkdir -p docs/figures/compare-lipschitz docs/figures/compare-antisymmetric docs/figures/analyze
$A compare-solvers docs/runs/lipschitz --threads 1 --batch 16 --cross 360 --out docs/figures/compare-lipschitz \
    > docs/figures/compare-lipschitz/table.txt 2> logs/compare-lipschitz.log &
$A compare-solvers docs/runs/antisymmetric --threads 1 --batch 16 --cross 360 --out docs/figures/compare-antisymmetric \
    > docs/figures/compare-antisymmetric/table.txt 2> logs/compare-antisymmetric.log &
wait
$A analyze docs/runs/lipschitz docs/runs/antisymmetric docs/runs/ctrnn docs/runs/lipschitz-noisy \
    --threads 1 --hessian-batch 256 --lanczos 20 --probes 50 --n-eval 360 --repeats 3 --out docs/figures/analyze \
    > docs/figures/analyze/log.txt 2> logs/analyze.log
# the control trained with Euler at gap/4 (docs/train_runs.sh, last run)
mkdir -p docs/figures/compare-lipschitz-fine
$A compare-solvers docs/runs/lipschitz-fine --threads 1 --batch 16 --cross 360 --rtols 1e-3,1e-4,1e-5 \
    --out docs/figures/compare-lipschitz-fine > docs/figures/compare-lipschitz-fine/table.txt 2> logs/compare-fine.log
