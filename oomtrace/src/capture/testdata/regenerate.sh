#!/bin/sh
# Rebuilds the BTF fixtures from kernel_types.c (see its header).
# Needs clang and llvm-objcopy (Debian: clang-22, llvm-22).
set -eu
cd "$(dirname "$0")"
PATH=/usr/lib/llvm-22/bin:$PATH
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for variant in new old; do
    define=
    [ "$variant" = old ] && define=-DOLD
    clang -g -O2 -target bpf $define -c kernel_types.c -o "$tmp/$variant.o"
    llvm-objcopy --dump-section ".BTF=kernel_types_$variant.btf" "$tmp/$variant.o"
done
