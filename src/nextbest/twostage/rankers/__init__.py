"""Learned rankers over `RankingData` (see nextbest.twostage.data.LearnedRanker)."""
