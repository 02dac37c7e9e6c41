/* proxy: not written yet */
