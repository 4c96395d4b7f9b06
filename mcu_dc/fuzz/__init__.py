"""Fuzzing in the tree: libFuzzer harnesses for the C runtime and the protocol parser, and a
Python fuzzer for the readers (docs/fuzzing.md; ``bench/fuzz.py`` runs them for a fixed count)."""
