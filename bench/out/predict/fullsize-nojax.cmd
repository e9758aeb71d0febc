# As fullsize.cmd, with JAX kept out of the measuring process (a runtime install has none).
PYTHONPATH=. nice -n 10 python bench/bench_predict.py --run RUN --films 20 --repeats 10 --no-jax --out bench/out/predict/fullsize-nojax.json
