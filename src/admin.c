/* admin: not written yet */
