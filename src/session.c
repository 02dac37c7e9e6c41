/* session: not written yet */
