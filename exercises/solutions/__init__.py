"""Reference solutions of the exercises, one file per step, in the same shape as the files you fill in.

Try the step yourself first: `python -m pytest exercises --solutions` runs the same tests against these files,
so they are the proof that every step can be solved (the project's test suite runs it).
"""
