"""The networks of the standard text-to-motion evaluator (Guo et al. 2022, `text_mot_match`), written to load its
released checkpoint: module and parameter names and shapes are the release's, the code is ours.

- MovementConvEncoder: features without the 4 foot contacts (B, T, F - 4) -> movement tokens (B, T / 4, 512):
  two stride-2 convolutions (kernel 4, padding 1), each followed by dropout and LeakyReLU(0.2), then a linear map.
- TextEncoderBiGRUCo: GloVe vectors + projected POS one-hots (B, 22, 300) -> a bidirectional GRU over the caption's
  tokens from a learned initial state -> both final states -> MLP -> (B, 512).
- MotionEncoderBiGRUCo: movement tokens (B, T / 4, 512) -> the same over the motion's tokens -> (B, 512).

The GRUs read packed sequences, so padding never reaches them; items keep their batch order.
"""

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence

from motiondiff.core.types import Embeddings, Lengths, Motion, MovementTokens, PosOneHots, WordVectors

UNIT_LENGTH = 4  # frames per movement token
CONTACTS = 4  # foot-contact features at the end of the 263 / 251 features, not read by the movement encoder


class MovementConvEncoder(nn.Module):
    """Features (B, T, F) -> movement tokens (B, T // 4, output_size), T a multiple of 4."""

    def __init__(self, input_size: int, hidden_size: int = 512, output_size: int = 512):
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv1d(input_size, hidden_size, kernel_size=4, stride=2, padding=1),
            nn.Dropout(0.2),
            nn.LeakyReLU(0.2),
            nn.Conv1d(hidden_size, output_size, kernel_size=4, stride=2, padding=1),
            nn.Dropout(0.2),
            nn.LeakyReLU(0.2),
        )
        self.out_net = nn.Linear(output_size, output_size)

    def forward(self, x: Motion) -> MovementTokens:
        h = self.main(x.transpose(1, 2))  # (B, C, T / 4)
        return self.out_net(h.transpose(1, 2))  # (B, T / 4, C)


class BiGRUEncoder(nn.Module):
    """Embedded sequence -> bidirectional GRU from a learned state -> both final states -> MLP."""

    def __init__(self, input_size: int, hidden_size: int, output_size: int):
        super().__init__()
        self.input_emb = nn.Linear(input_size, hidden_size)
        self.gru = nn.GRU(hidden_size, hidden_size, batch_first=True, bidirectional=True)
        self.output_net = nn.Sequential(
            nn.Linear(2 * hidden_size, hidden_size),
            nn.LayerNorm(hidden_size),
            nn.LeakyReLU(0.2),
            nn.Linear(hidden_size, output_size),
        )
        self.hidden = nn.Parameter(torch.randn(2, 1, hidden_size))  # the initial state of each direction

    def encode(self, x: Tensor, lengths: Tensor) -> Tensor:
        """x (B, L, input_size) with lengths (B,) (each >= 1) -> (B, output_size), in the batch's order."""
        assert x.shape[0] == lengths.shape[0] and int(lengths.min()) >= 1 and int(lengths.max()) <= x.shape[1]
        h = self.input_emb(x)  # (B, L, H)
        packed = pack_padded_sequence(h, lengths.cpu(), batch_first=True, enforce_sorted=False)
        _, last = self.gru(packed, self.hidden.expand(-1, x.shape[0], -1).contiguous())  # (2, B, H), input order
        return self.output_net(torch.cat([last[0], last[1]], dim=-1))  # (B, output_size)


class TextEncoderBiGRUCo(BiGRUEncoder):
    """Caption tokens (B, 22, 300) with POS one-hots (B, 22, 15) and lengths (B,) -> (B, output_size)."""

    def __init__(self, word_size: int = 300, pos_size: int = 15, hidden_size: int = 512, output_size: int = 512):
        super().__init__(word_size, hidden_size, output_size)
        self.pos_emb = nn.Linear(pos_size, word_size)

    def forward(
        self,
        word_embeddings: WordVectors,
        pos_one_hots: PosOneHots,
        lengths: Lengths,
    ) -> Embeddings:
        return self.encode(word_embeddings + self.pos_emb(pos_one_hots), lengths)  # words and POS are added


class MotionEncoderBiGRUCo(BiGRUEncoder):
    """Movement tokens (B, L, 512) with token lengths (B,) -> (B, output_size)."""

    def __init__(self, input_size: int = 512, hidden_size: int = 1024, output_size: int = 512):
        super().__init__(input_size, hidden_size, output_size)

    def forward(self, movements: MovementTokens, lengths: Lengths) -> Embeddings:
        return self.encode(movements, lengths)
