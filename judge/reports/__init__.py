"""The report of a run (`just report`): overview.py writes report/index.html from the cost report
(factory.cost), the training curves (training.py, from train/metrics.jsonl) and the scores
(scores.py, with the bootstrap intervals and win rates of stats.py).
"""
