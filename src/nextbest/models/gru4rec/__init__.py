"""GRU4Rec (Hidasi et al. 2016; Hidasi & Karatzoglou 2018), written from the papers."""

from nextbest.models.gru4rec.config import GRU4RecConfig
from nextbest.models.gru4rec.model import GRU4Rec

__all__ = ["GRU4Rec", "GRU4RecConfig"]
