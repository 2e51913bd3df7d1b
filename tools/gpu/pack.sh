#!/usr/bin/env bash
# Pack what a bare GPU machine needs beside the repository: the dataset (its own files, xz-packed:
# 51 MB of JPEGs -> 39 MB) into .gpu/ and, for a machine without Keras, the wheels into .whl/.
#   tools/gpu/pack.sh ../shared/fer2013
# Both folders are git-ignored. On the GPU machine, tools/gpu/run.sh unpacks and trains.
set -euo pipefail
data=${1:?usage: tools/gpu/pack.sh PATH/fer2013}
cd "$(dirname "$0")/../.."
mkdir -p .gpu .whl
tar cf - -C "$(dirname "$data")" "$(basename "$data")" | xz -9e -T0 > .gpu/fer2013.tar.xz.tmp
mv .gpu/fer2013.tar.xz.tmp .gpu/fer2013.tar.xz
keras_version=$(.venv/bin/python -c 'import importlib.metadata as m; print(m.version("keras"))')
# The GPU image has Python 3.12 and Keras' other needs (numpy, h5py, ml-dtypes, rich, absl-py).
for package in "keras==$keras_version" namex optree; do
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d .whl "$package"
done
du -sh .gpu .whl
