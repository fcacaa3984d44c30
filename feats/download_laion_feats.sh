#!/usr/bin/env bash
# Precomputed raw backbone features of the 1M-image LAION subset -> feats/{clip,dino,...}/laion_subset.pth.
# They are converted once, on first use, into memory-mapped stores (feats/<model>/laion_subset.store/).
set -euo pipefail
cd "$(dirname "$0")/.."
wget -c https://www.cs.cmu.edu/~dataattribution/files/feats_laion.tar -O feats/feats_laion.tar
tar -xf feats/feats_laion.tar -C feats/
rm feats/feats_laion.tar
ls feats/*/laion_subset.pth
