"""The paper's reported numbers (Sahi, Elgayar, Hikal 2024, Table 4), for side-by-side comparison.

Reported, not reproduced: its per-class tables are at chance level, the mark of metrics computed
on a shuffled evaluation order, and 79% is above the best published single models on FER2013.
"""

PAPER_TABLE_4 = {
    "cnn": {"paper_name": "CNN", "accuracy": 0.7941, "loss": 0.5620, "epochs": 50},
    "resnet50": {"paper_name": "ResNet50", "accuracy": 0.7276, "loss": 0.7379, "epochs": 5},
    "attention_cnn": {"paper_name": "CNN + Attention", "accuracy": 0.5519, "loss": 1.2363, "epochs": None},
}
