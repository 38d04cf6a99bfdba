"""Build an `XLMRobertaForSequenceClassification` checkpoint with random weights, offline.

The tests and `bench/` cannot download `routellm/bert_gpt4_augmented`; they build a checkpoint of
the same class and tokenizer kind here and load it through `AutoTokenizer` /
`AutoModelForSequenceClassification`, exactly as the real model loads. `winning_label` sets the
classifier head's bias so one label wins for every text, which makes routing deterministic.

    build_checkpoint(tmp_path / "bert", winning_label=2)            # tiny: loads in ~0.1 s
    build_checkpoint(path, hidden=768, layers=12, vocab=250002)      # the real model's shape
"""

# ruff: noqa: S106  (tokenizer special tokens such as unk_token="<unk>" are not passwords)
from __future__ import annotations

import json
import random
from pathlib import Path

_WORDS_TEXT = (
    "the a of to and in is it you that for on with as are this be at or have from by not but "
    "what all were when we there can an your which their said if do will each about how up out "
    "them then she many some so these would other into has more her two like him see time could "
    "no make than first been its who now people my made over did down only way find use may "
    "water long little very after words called just where most know get through back much "
    "before go good new write our used me man too any day same right look think also around "
    "another came come work three word must because does part even place well such here take "
    "why things help put years different away again off went old number great tell men say "
    "small every found still between name should home big give air line set own under read last "
    "never us left end along while might next sound below saw something thought both few those "
    "always looked show large often together asked house world going want school important "
    "until form food keep children feet land side without boy once animals life enough took "
    "sometimes four head above kind began almost live page got earth need far hand high year "
    "mother light parts country father let night following picture being study second eyes soon "
    "times story boys since white days ever paper hard near sentence better best across during "
    "today others however sure means knew try told young miles sun ways thing whole hear "
    "example heard several change answer room sea against top turned learn point city play "
    "toward five using himself usually python code function error explain write poem prove "
    "theorem integral matrix database query translate summarize essay letter resignation recipe "
    "请问 如何 写 一封 辞职信 你好 谢谢 数学 问题 代码"
)
WORDS = _WORDS_TEXT.split()


def corpus(n: int = 2000, seed: int = 0) -> list[str]:
    """Deterministic sentences over `WORDS`, for training the tokenizer and for benchmarks."""
    rng = random.Random(seed)  # noqa: S311  (a reproducible corpus, not a secret)
    return [" ".join(rng.choices(WORDS, k=rng.randint(3, 40))) for _ in range(n)]


def build_checkpoint(
    path: str | Path,
    *,
    hidden: int = 32,
    layers: int = 2,
    heads: int | None = None,
    intermediate: int | None = None,
    vocab: int = 1000,
    max_positions: int = 514,
    winning_label: int | None = None,
    seed: int = 0,
) -> Path:
    """Write a tokenizer and a randomly initialised 3-label XLM-RoBERTa classifier to `path`."""
    import torch
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import (
        PreTrainedTokenizerFast,
        XLMRobertaConfig,
        XLMRobertaForSequenceClassification,
    )

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    specials = ["<s>", "<pad>", "</s>", "<unk>"]
    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    trainer = trainers.UnigramTrainer(
        vocab_size=min(vocab, 800), special_tokens=[*specials, "<mask>"], unk_token="<unk>"
    )
    tok.train_from_iterator(corpus(seed=seed), trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>",
        pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", 0), ("</s>", 2)],
    )
    fast = PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        sep_token="</s>",
        cls_token="<s>",
        pad_token="<pad>",
        mask_token="<mask>",
        model_max_length=max_positions - 2,
    )
    fast.save_pretrained(path)

    torch.manual_seed(seed)
    config = XLMRobertaConfig(  # type: ignore[call-arg]  # num_labels goes to PretrainedConfig
        vocab_size=max(vocab, tok.get_vocab_size()),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads or (hidden // 64 if hidden >= 64 else 2),
        intermediate_size=intermediate or hidden * 4,
        max_position_embeddings=max_positions,
        type_vocab_size=1,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
        num_labels=3,
        id2label={0: "LABEL_0", 1: "LABEL_1", 2: "LABEL_2"},
        label2id={"LABEL_0": 0, "LABEL_1": 1, "LABEL_2": 2},
    )
    model = XLMRobertaForSequenceClassification(config).eval()  # type: ignore[no-untyped-call]
    if winning_label is not None:
        with torch.no_grad():
            bias = torch.zeros(3)
            bias[winning_label] = 8.0
            model.classifier.out_proj.bias.copy_(bias)
            model.classifier.out_proj.weight.mul_(0.01)
    model.save_pretrained(path)
    (path / "synthetic.json").write_text(json.dumps({"winning_label": winning_label}))
    return path
