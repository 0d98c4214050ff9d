"""Word count over a set of input files, one counting step per file plus a merge.

    trun --module wordcount WordCount --local-scheduler --paths '["a.txt", "b.txt"]'
"""
from __future__ import annotations

import collections
import json

import trun


class InputText(trun.ExternalStep):
    """A text file supplied by the user."""

    path = trun.Parameter()

    def output(self):
        return trun.LocalTarget(self.path)


class CountFile(trun.Step):
    """Counts the words of one file into ``<path>.counts.json``."""

    path = trun.Parameter()

    def requires(self):
        return InputText(self.path)

    def output(self):
        return trun.LocalTarget(self.path + ".counts.json")

    def run(self):
        counts = collections.Counter()
        with self.input().open("r") as f:
            for line in f:
                counts.update(line.split())
        with self.output().open("w") as out:
            json.dump(counts, out)


class WordCount(trun.Step):
    """Merges the per-file counts into ``wordcount.tsv``, most common first."""

    paths = trun.ListParameter()
    output_path = trun.Parameter(default="wordcount.tsv")

    def requires(self):
        return [CountFile(p) for p in self.paths]

    def output(self):
        return trun.LocalTarget(self.output_path)

    def run(self):
        total = collections.Counter()
        for target in self.input():
            with target.open("r") as f:
                total.update(json.load(f))
        with self.output().open("w") as out:
            for word, n in total.most_common():
                out.write(f"{word}\t{n}\n")
