#!/bin/sh
# Trains the five runs analysed in docs/ANALYSIS.md with `neuralode-rnn train` (two at a time,
# one thread each; about 12 minutes on 2 cores).  The run directories docs/runs/* must not exist
# yet (train refuses to overwrite a run; delete them to retrain).
set -e
mkdir -p logs
if [ -e docs/runs ]; then echo "docs/runs exists; remove it to retrain" >&2; exit 1; fi
# digits, hidden 64, samples at t_k = 0.5 k (eps 0.5, one Euler step per sample), Adam lr 3e-3
# (x0.1 after 90% of the epochs: --schedule step), batch 64, 40 epochs, seed 0; --recipe fixed: the
# model's own solver for every batch.  Every setting is given, so the presets (`neuralode-rnn list
# presets`) change none of them.
T="python -m neuralode_rnn.cli train --task digits --hidden-size 64 --eps 0.5 --method euler --lr 3e-3 \
--batch-size 64 --schedule step --seed 0 --threads 1 --quiet --recipe fixed"
$T --epochs 40 --model lipschitz --run-dir docs/runs/lipschitz > logs/train_lipschitz.log 2>&1 &
$T --epochs 40 --model antisymmetric --run-dir docs/runs/antisymmetric > logs/train_antisymmetric.log 2>&1 &
wait
$T --epochs 40 --model ctrnn --run-dir docs/runs/ctrnn > logs/train_ctrnn.log 2>&1 &
# the Noisy RNN: additive noise sigma = 0.1 while training (Euler-Maruyama), evaluated without
$T --epochs 40 --model lipschitz --noise-sigma 0.1 --noise additive --run-dir docs/runs/lipschitz-noisy \
    > logs/train_lipschitz_noisy.log 2>&1 &
wait
# control for "train with one solver, test with another": the same Lipschitz RNN trained with
# Euler at a quarter of the sample gap, 20 epochs (about 5 minutes)
$T --epochs 20 --model lipschitz --step-size 0.125 --run-dir docs/runs/lipschitz-fine > logs/train_lipschitz_fine.log 2>&1
for r in lipschitz antisymmetric ctrnn lipschitz-noisy lipschitz-fine; do
    printf '%s: ' "$r"; cat "docs/runs/$r/status.txt"
done
