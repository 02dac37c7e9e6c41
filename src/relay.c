/* relay: not written yet */
