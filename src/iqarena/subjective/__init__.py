"""Subjective scores from pairwise human judgements: Elo (as PIPAL), Bradley-Terry with ties,
extension of a rated set with new images, and pair selection for a study.

>>> from iqarena import subjective as sj
>>> j = sj.read_judgements("judgements.csv")       # reference,image_a,image_b,winner[,rater,time]
>>> elo = sj.fit_elo(j)                            # Elo, K=32, initial 1450, mean of 10 shuffled orders
>>> bt = sj.fit_bt(j)                              # Davidson-BT on the Elo scale, with standard errors
>>> bt.write_labels("labels.txt")                  # name,score lines (PIPAL's label format)
>>> more = sj.extend(bt, sj.read_judgements("new.csv"))   # new images on the same scale
>>> sj.next_pairs(j, budget=100, rule="active")    # [(reference, image_a, image_b), ...]

Independent of the metrics layer; see docs/subjective.md.
"""

from .bt import fit_bt, pair_counts
from .elo import expected, fit_elo, update
from .extend import extend
from .judgements import Judgements, concat, from_arrays, from_columns, read_images, read_judgements, write_judgements
from .pairs import RULES, next_pairs, pair_information, propose
from .ratings import INITIAL, SCALE, Ratings, bootstrap, read_ratings

__all__ = ["INITIAL", "RULES", "SCALE", "Judgements", "Ratings", "bootstrap", "concat", "expected", "extend",
           "fit_bt", "fit_elo", "from_arrays", "from_columns", "next_pairs", "pair_counts", "pair_information",
           "propose", "read_images", "read_judgements", "read_ratings", "update", "write_judgements"]
