/* identity: not written yet */
