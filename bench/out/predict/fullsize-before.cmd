# The code before issue 18 section 2 (commit aca5a58), timed by today's bench script with the same RUN:
git archive aca5a58 core | tar -x -C OLD
PYTHONPATH=OLD nice -n 10 python bench/bench_predict.py --run RUN --root ../shared/data/mias --weights ../shared/weights --films 20 --repeats 10 --out bench/out/predict/fullsize-before.json
