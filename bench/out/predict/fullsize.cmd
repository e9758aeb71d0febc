# RUN: a run trained as bench_predict.py trains one (TrainConfig(dataset="mias", root=../shared/data/mias)
# with epochs=1, balance=class_weights, patience=0); without --run the bench trains it itself.
PYTHONPATH=. nice -n 10 python bench/bench_predict.py --run RUN --films 20 --repeats 10 --out bench/out/predict/fullsize.json
