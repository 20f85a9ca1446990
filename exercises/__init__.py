"""Build T5 yourself: twelve steps from an empty file to a T5 that loads Hugging Face weights, answers, and learns.

Start with docs/exercises.md. Fill in exercises/step01_rmsnorm.py, run `python -m pytest exercises -k step01`,
go on when it is green; `python -m exercises.progress` shows where you are.
"""
