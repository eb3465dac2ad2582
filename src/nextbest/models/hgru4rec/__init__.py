"""HGRU4Rec (Quadrana et al., RecSys 2017), written from the paper, on GRU4Rec's parts."""

from nextbest.models.hgru4rec.config import HGRU4RecConfig
from nextbest.models.hgru4rec.model import HGRU4Rec
from nextbest.models.hgru4rec.state import HState

__all__ = ["HGRU4Rec", "HGRU4RecConfig", "HState"]
