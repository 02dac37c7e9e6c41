/* node: not written yet */
