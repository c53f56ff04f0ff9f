"""Trains one model with torch-rechub on encoded CSV splits and prints its test AUC as JSON.

Called by bench/parity.ts, which writes the splits and the feature spec. Run
with torch-rechub importable (PYTHONPATH pointing at its source) and PyTorch
installed, for example Debian's python3-torch.

With "initPath" in the spec, the script writes the model's initial
parameters there (float32 values, one after another, in named_parameters
order, with a JSON index beside them) and trains on the batches in file
order, so onnxrec can start from the same weights and see the same batches.
"""
import json
import sys
import time

import numpy as np
import pandas as pd
import torch
from torch_rechub.basic.features import DenseFeature, SparseFeature
from torch_rechub.models.multi_task import MMOE, PLE, SharedBottom
from torch_rechub.trainers import MTLTrainer
from torch.utils.data import DataLoader
from torch_rechub.utils.data import DataGenerator, TorchDataset


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
    train_dl, val_dl, test_dl = DataGenerator(x_train, y_train).generate_dataloader(
        x_val=x_val, y_val=y_val, x_test=x_test, y_test=y_test, batch_size=spec["batchSize"]
    )
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
    if "initPath" in spec:
        write_parameters(model, spec["initPath"])
        train_dl = DataLoader(TorchDataset(x_train, y_train), batch_size=spec["batchSize"], shuffle=False)
    adaptive = {"method": "uwl"} if spec["weighting"] == "uwl" else None
    trainer = MTLTrainer(model, task_types=task_types, optimizer_params={"lr": spec["lr"], "weight_decay": spec["weightDecay"]},
                         adaptive_params=adaptive, n_epoch=spec["nEpoch"], earlystop_patience=spec["patience"],
                         device="cpu", model_path=spec["workDir"])
    started = time.time()
    log = trainer.fit(train_dl, val_dl)
    seconds = time.time() - started
    auc = trainer.evaluate(trainer.model, test_dl)
    # Each epoch's entry contains the task losses, then the validation AUCs.
    train_loss = [[float(a) for a in epoch[:len(labels)]] for epoch in log]
    validation = [[float(a) for a in epoch[len(labels):]] for epoch in log]
    print("RESULT " + json.dumps({"auc": [float(a) for a in auc], "parameters": parameters, "seconds": seconds,
                                  "trainLoss": train_loss, "validation": validation}))


def write_parameters(model, path):
    index = {}
    offset = 0
    with open(path, "wb") as out:
        for name, value in model.named_parameters():
            data = value.detach().numpy().astype(np.float32)
            index[name] = {"offset": offset, "shape": list(data.shape)}
            out.write(data.tobytes())
            offset += data.size
    with open(path + ".json", "w") as out:
        json.dump(index, out)


if __name__ == "__main__":
    main()
