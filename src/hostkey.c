/* hostkey: not written yet */
