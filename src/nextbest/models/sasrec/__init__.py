"""SASRec-style self-attentive session model (Kang and McAuley, ICDM 2018)."""

from nextbest.models.sasrec.config import SASRecConfig
from nextbest.models.sasrec.model import SASRec

__all__ = ["SASRec", "SASRecConfig"]
