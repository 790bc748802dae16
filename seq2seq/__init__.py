"""seq2seq: LSTM (or GRU) encoder-decoder machine translation (Sutskever et al., 2014).

The public API: build a `Seq2Seq` from a `ModelConfig`, tokenize with `Tokenizer`, and turn
text into text with `Translator.load(path).translate(texts)`; `Translator.load_ensemble(paths)`
translates with several models as one (`Ensemble`); `Translator.load(path, shortlist=True)`
decodes over the checkpoint's lexical `Shortlist` (`build_shortlist` learns one).
"""

from seq2seq.checkpoint import Checkpoint, CheckpointError, load_checkpoint, save_checkpoint
from seq2seq.codec import Prepared, TextCodec
from seq2seq.config import BOS_ID, EOS_ID, PAD_ID, UNK_ID, ModelConfig, ModelSizes
from seq2seq.ensemble import Ensemble
from seq2seq.model import Seq2Seq
from seq2seq.search import Hypothesis, SearchOptions, beam_search, greedy_search
from seq2seq.shortlist import Shortlist, build_shortlist
from seq2seq.tokenizer import Tokenizer, TokenizerError, TokenizerPair
from seq2seq.translator import Translator

__all__ = [
    "BOS_ID",
    "EOS_ID",
    "PAD_ID",
    "UNK_ID",
    "Checkpoint",
    "CheckpointError",
    "Ensemble",
    "Hypothesis",
    "ModelConfig",
    "ModelSizes",
    "Prepared",
    "SearchOptions",
    "Seq2Seq",
    "Shortlist",
    "TextCodec",
    "Tokenizer",
    "TokenizerError",
    "TokenizerPair",
    "Translator",
    "beam_search",
    "build_shortlist",
    "greedy_search",
    "load_checkpoint",
    "save_checkpoint",
]
__version__ = "0.1.0"
