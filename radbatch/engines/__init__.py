"""Engines built once per worker from shipped specs: simple and batched llama.cpp, the rules member, confidence."""
