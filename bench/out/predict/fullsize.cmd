python bench/bench_predict.py --films 20 --repeats 10 --out bench/out/predict/fullsize.json
