"""Keras image encoders (keras.applications, AlexNet, GoogLeNet) behind one registry."""
