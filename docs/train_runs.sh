#!/bin/sh
# Trains the four runs analysed in docs/ANALYSIS.md (two at a time; about 6 minutes on 2 cores).
set -e
T="python examples/train_for_analysis.py --task digits --hidden 64 --epochs 40 --time-step 0.5 --lr 3e-3"
$T --field lipschitz --out docs/runs/lipschitz > logs/train_lipschitz.log 2>&1 &
$T --field antisymmetric --out docs/runs/antisymmetric > logs/train_antisymmetric.log 2>&1 &
wait
$T --field ctrnn --out docs/runs/ctrnn > logs/train_ctrnn.log 2>&1 &
$T --field lipschitz --sigma 0.1 --out docs/runs/lipschitz-noisy > logs/train_lipschitz_noisy.log 2>&1 &
wait
# control for "train with one solver, test with another": the same Lipschitz RNN trained with
# Euler at a quarter of the sample gap, 20 epochs (about 5 minutes)
python examples/train_for_analysis.py --task digits --hidden 64 --epochs 20 --time-step 0.5 --lr 3e-3 \
    --field lipschitz --step-size 0.125 --out docs/runs/lipschitz-fine > logs/train_lipschitz_fine.log 2>&1
