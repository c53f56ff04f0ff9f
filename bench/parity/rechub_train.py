"""Trains one model with torch-rechub on encoded CSV splits and prints its test AUC, after each epoch and at the end, as JSON.

Called by bench/parity.ts, which writes the splits and the feature spec. Run
with torch-rechub importable (PYTHONPATH pointing at its source) and PyTorch
installed, for example Debian's python3-torch.

To share randomness with onnxrec, it runs twice. With "initPath" and
"init": "write" in the spec, the script writes the model's initial
parameters there (float32 values, one after another, in named_parameters
order, with a JSON index beside them) and stops, so onnxrec can start from
them. With "init": "read" it loads them back, reads each epoch's rows in
the order of "orderPath", and makes every Dropout apply the masks of
"masksPath" in place of its own. onnxrec writes both files (see
bench/parity/shared-randomness.ts). With "stepsPath" as well, it takes
"steps" optimizer steps of its trainer, writes either Adam's first moment
("write": "moments") or the parameters ("write": "parameters") of every
model parameter there, in the format of the initial parameters, prints the
validation AUC and each step's task losses, and stops. After one step the
first moment is 0.1 times the gradient (weight decay included). With
"float64", the model, the trainer's loss weights and the batches are cast
to float64 first, so steps or a whole training run give the values both
frameworks' float32 runs round.
"""
import itertools
import json
import sys
import time

import numpy as np
import pandas as pd
import torch
from torch_rechub.basic.features import DenseFeature, SparseFeature
from torch_rechub.models.multi_task import MMOE, PLE, SharedBottom
from torch_rechub.trainers import MTLTrainer
from torch_rechub.utils.data import DataGenerator


def main():
    spec = json.loads(sys.argv[1])
    torch.manual_seed(spec["seed"])
    np.random.seed(spec["seed"])
    torch.set_num_threads(spec.get("threads", 2))
    splits = {name: pd.read_csv(f"{spec['dataDir']}/{name}.csv") for name in ("train", "val", "test")}
    features = [SparseFeature(f["name"], f["vocabSize"], embed_dim=f["embedDim"]) for f in spec["sparse"]]
    features += [DenseFeature(name) for name in spec["dense"]]
    labels = spec["labels"]

    def columns(frame):
        x = {f.name: frame[f.name].values for f in features}
        return x, frame[labels].values.astype(np.float32)

    (x_train, y_train), (x_val, y_val), (x_test, y_test) = (columns(splits[n]) for n in ("train", "val", "test"))
    train_dl, _, _ = DataGenerator(x_train, y_train).generate_dataloader(
        x_val=x_val, y_val=y_val, x_test=x_test, y_test=y_test, batch_size=spec["batchSize"]
    )
    # Evaluation reads the rows in file order, as torch-rechub's loaders do, a batch at a time.
    val_dl = ArrayBatches(x_val, y_val, SequentialOrder(len(y_val), spec["batchSize"]))
    test_dl = ArrayBatches(x_test, y_test, SequentialOrder(len(y_test), spec["batchSize"]))
    task_types = ["classification"] * len(labels)
    options = spec["model"]
    if options["kind"] == "ple":
        model = PLE(features, task_types, n_level=options["nLevel"], n_expert_specific=options["nExpertSpecific"],
                    n_expert_shared=options["nExpertShared"], expert_params=options["expertParams"],
                    tower_params_list=options["towerParamsList"])
    elif options["kind"] == "mmoe":
        model = MMOE(features, task_types, n_expert=options["nExpert"], expert_params=options["expertParams"],
                     tower_params_list=options["towerParamsList"])
    else:
        model = SharedBottom(features, task_types, bottom_params=options["bottomParams"],
                             tower_params_list=options["towerParamsList"])
    parameters = sum(p.numel() for p in model.parameters())
    masks = None
    if "initPath" in spec:
        if spec["init"] == "write":
            write_parameters(model, spec["initPath"])
            print("RESULT " + json.dumps({"parameters": parameters}))
            return
        read_parameters(model, spec["initPath"])
        train_dl = ArrayBatches(x_train, y_train, SharedOrder(spec["orderPath"], len(y_train), spec["batchSize"]))
        masks = SharedMasks(spec["masksPath"])
        masks.install(model)
    adaptive = {"method": "uwl"} if spec["weighting"] == "uwl" else None
    # The trainer adds UWL's weights to the model; they are not among the parameters compared.
    model_parameters = [name for name, _ in model.named_parameters()]
    trainer = MTLTrainer(model, task_types=task_types, optimizer_params={"lr": spec["lr"], "weight_decay": spec["weightDecay"]},
                         adaptive_params=adaptive, n_epoch=spec["nEpoch"], earlystop_patience=spec["patience"],
                         earlystop_taskid=spec.get("earlystopTaskid", 0),
                         device="cpu", model_path=spec["workDir"])
    if spec.get("float64"):
        model.double()
        train_dl, val_dl, test_dl = (Float64Batches(loader) for loader in (train_dl, val_dl, test_dl))
    step_losses = []

    def recording(loss_fn):
        # The trainer casts the labels to float32, and binary cross entropy needs both sides in one type.
        def loss(prediction, target):
            value = loss_fn(prediction, target.to(prediction.dtype))
            step_losses.append(value.item())
            return value
        return loss

    trainer.loss_fns = [recording(f) for f in trainer.loss_fns]
    if "stepsPath" in spec:
        trainer.train_one_epoch(list(itertools.islice(iter(train_dl), spec["steps"])))
        if spec["write"] == "moments":
            write_moments(model, trainer.optimizer, model_parameters, spec["stepsPath"])
        else:
            write_tensors(((name, value.detach()) for name, value in model.named_parameters() if name in model_parameters),
                          spec["stepsPath"])
        auc = trainer.evaluate(trainer.model, val_dl)
        losses = [step_losses[i:i + len(labels)] for i in range(0, len(step_losses), len(labels))]
        print("RESULT " + json.dumps({"parameters": parameters, "auc": [float(a) for a in auc], "stepLosses": losses}))
        return
    evaluate = trainer.evaluate
    test_by_epoch = []

    def evaluating(model, loader):
        # fit scores the validation set once an epoch, so the test set is scored here with the same weights.
        scores = evaluate(model, loader)
        if loader is val_dl:
            test_by_epoch.append([float(a) for a in evaluate(model, test_dl)])
        return scores

    trainer.evaluate = evaluating
    started = time.time()
    log = trainer.fit(train_dl, val_dl)
    seconds = time.time() - started
    if masks is not None:
        masks.check_used(len(log))
    auc = trainer.evaluate(trainer.model, test_dl)
    # Each epoch's entry contains the task losses, then the validation AUCs.
    train_loss = [[float(a) for a in epoch[:len(labels)]] for epoch in log]
    validation = [[float(a) for a in epoch[len(labels):]] for epoch in log]
    print("RESULT " + json.dumps({"auc": [float(a) for a in auc], "parameters": parameters, "seconds": seconds,
                                  "trainLoss": train_loss, "validation": validation,
                                  "testByEpoch": test_by_epoch}))


def write_parameters(model, path):
    write_tensors(((name, value.detach()) for name, value in model.named_parameters()), path)


def write_moments(model, optimizer, names, path):
    """Writes Adam's first moment of each parameter in `names` (zeros for a parameter that got no step)."""
    def moment(value):
        state = optimizer.state.get(value, {})
        return state["exp_avg"] if "exp_avg" in state else torch.zeros_like(value)
    write_tensors(((name, moment(value).detach()) for name, value in model.named_parameters() if name in names), path)


class Float64Batches:
    """Passes a data loader's batches on with their floating-point tensors cast to float64."""

    def __init__(self, loader):
        self.loader = loader

    def __len__(self):
        return len(self.loader)

    def __iter__(self):
        for x_dict, ys in self.loader:
            yield {k: v.double() if v.is_floating_point() else v for k, v in x_dict.items()}, ys.double()


def write_tensors(tensors, path):
    """Writes float32 tensors one after another, with a JSON index of each one's offset and shape."""
    index = {}
    offset = 0
    with open(path, "wb") as out:
        for name, value in tensors:
            data = value.numpy().astype(np.float32)
            index[name] = {"offset": offset, "shape": list(data.shape)}
            out.write(data.tobytes())
            offset += data.size
    with open(path + ".json", "w") as out:
        json.dump(index, out)


def read_parameters(model, path):
    with open(path + ".json") as index_file:
        index = json.load(index_file)
    values = np.fromfile(path, dtype=np.float32)
    with torch.no_grad():
        for name, value in model.named_parameters():
            entry = index[name]
            size = int(np.prod(entry["shape"]))
            value.copy_(torch.from_numpy(values[entry["offset"]:entry["offset"] + size].reshape(entry["shape"])))


class SharedMasks:
    """Hands out onnxrec's dropout masks, in the order the forward pass calls Dropout."""

    def __init__(self, path):
        with open(path + ".json") as index_file:
            self.index = json.load(index_file)
        # numpy cannot map an empty file, which a model without dropout writes.
        self.data = np.memmap(path, dtype=np.uint8, mode="r") if self.index["bytes"] > 0 else np.zeros(0, np.uint8)
        if self.data.size != self.index["bytes"]:
            raise ValueError(f"{path} contains {self.data.size} bytes, but its index expects {self.index['bytes']}")
        self.offset = 0
        self.calls = 0

    def install(self, module):
        for name, child in module.named_children():
            if isinstance(child, torch.nn.Dropout) and child.p > 0:
                setattr(module, name, MaskedDropout(child.p, self))
            else:
                self.install(child)

    def next(self, x):
        widths, ratios, steps = self.index["widths"], self.index["ratios"], self.index["steps"]
        k = self.calls % len(widths)
        step = self.calls // len(widths)
        if step >= len(steps) * self.index["epochs"]:
            raise ValueError(f"Dropout call {self.calls} comes after the last mask of {self.index['epochs']} epochs")
        rows, width = x.shape
        if rows != steps[step % len(steps)] or width != widths[k]:
            raise ValueError(f"Dropout call {self.calls} has shape {tuple(x.shape)}; "
                             f"its mask is {steps[step % len(steps)]} x {widths[k]}")
        count = rows * width
        size = (count + 7) // 8
        bits = np.unpackbits(self.data[self.offset:self.offset + size], bitorder="little")[:count]
        self.offset += size
        self.calls += 1
        return torch.from_numpy(bits.astype(np.float32).reshape(rows, width)), ratios[k]

    def check_used(self, epochs):
        """Checks that training drew exactly the masks of its first `epochs` epochs."""
        steps = len(self.index["steps"]) * epochs
        if self.calls != steps * len(self.index["widths"]):
            raise ValueError(f"{epochs} epochs made {self.calls} Dropout calls, but the masks expect "
                             f"{steps * len(self.index['widths'])} ({len(self.index['widths'])} per step over {steps} steps)")


class SharedOrder:
    """A batch sampler that reads each epoch's rows in onnxrec's order."""

    def __init__(self, path, rows, batch_size):
        self.orders = np.fromfile(path, dtype="<u4").astype(np.int64)
        if self.orders.size % rows != 0:
            raise ValueError(f"{path} contains {self.orders.size} row indices, not a multiple of {rows} rows")
        self.orders = self.orders.reshape(-1, rows)
        self.batch_size = batch_size
        self.epoch = 0

    def __len__(self):
        return (self.orders.shape[1] + self.batch_size - 1) // self.batch_size

    def __iter__(self):
        if self.epoch >= self.orders.shape[0]:
            raise ValueError(f"the row orders cover {self.orders.shape[0]} epochs, but training started epoch {self.epoch + 1}")
        order = self.orders[self.epoch]
        self.epoch += 1
        for start in range(0, order.size, self.batch_size):
            yield order[start:start + self.batch_size]


class SequentialOrder:
    """A batch sampler that reads the rows in file order every epoch."""

    def __init__(self, rows, batch_size):
        self.rows = rows
        self.batch_size = batch_size

    def __len__(self):
        return (self.rows + self.batch_size - 1) // self.batch_size

    def __iter__(self):
        for start in range(0, self.rows, self.batch_size):
            yield np.arange(start, min(start + self.batch_size, self.rows))


class ArrayBatches:
    """Yields the batches a batch sampler names, gathered from whole columns at once.

    Each batch contains the same tensors, with the same types, as torch's default collation of
    TorchDataset's rows, without building a dictionary per row.
    """

    def __init__(self, x, y, sampler):
        self.x = x
        self.y = y
        self.sampler = sampler

    def __len__(self):
        return len(self.sampler)

    def __iter__(self):
        for rows in self.sampler:
            yield {k: torch.from_numpy(v[rows]) for k, v in self.x.items()}, torch.from_numpy(self.y[rows])


class MaskedDropout(torch.nn.Module):
    """Dropout that applies the next shared mask in training and passes values through in evaluation."""

    def __init__(self, p, masks):
        super().__init__()
        self.p = p
        self.masks = masks

    def forward(self, x):
        if not self.training:
            return x
        keep, ratio = self.masks.next(x)
        if abs(ratio - self.p) > 1e-9:
            raise ValueError(f"Dropout ratio {self.p} does not match the ratio {ratio} its mask was drawn with")
        return x * keep * (1.0 / (1.0 - self.p))


if __name__ == "__main__":
    main()
