"""Landing page: what this tool is, what it can do today, and how to point it at data."""

import streamlit as st

from core import __version__
from core.data.records import CLASS_NAMES, MIAS_CLASSES

st.title("Mammogram classification and malignancy localisation")
st.write(
    "An open tool that reimplements two published methods, attention learning on mini-MIAS "
    "(a VGG16 encoder with an RNN decoder that attends over the film) and transfer learning "
    "for micro-calcifications (fine-tuned AlexNet and GoogLeNet on CBIS-DDSM), and measures "
    "them on honest protocols: patient-grouped splits, cross-validation and confidence "
    "intervals, beside trivial baselines."
)

st.subheader("The seven mini-MIAS classes")
st.table({"id": list(range(len(MIAS_CLASSES))), "class": list(MIAS_CLASSES),
          "meaning": [CLASS_NAMES[c] for c in MIAS_CLASSES]})

st.subheader("Use it today from the command line")
st.code(
    "python -m core data summary --dataset mias --root PATH/TO/MIAS --json\n"
    "python -m core data synth --out demo_films --n 70 --seed 0   # SYNTHETIC films\n"
    "python -m core train --dataset mias --root PATH/TO/MIAS --json\n"
    "python -m core cv --dataset mias --root PATH/TO/MIAS --folds 5 --json",
    language="bash",
)
st.caption(f"core {__version__}. Synthetic films are drawn by the program and are labelled "
           "as synthetic wherever they appear; they are not mammograms.")
