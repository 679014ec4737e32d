"""show_config(): compiled ISAs, detected CPU features, threads, kernel chosen per op. (STUB)"""


def show_config(file=None):
    print("refquant: compiled extension not built yet", file=file)
