"""The composition roots (build_app / Application, the playground's composition) and the data-directory
instance lock.
"""
