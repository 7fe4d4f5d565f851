// @ts-check
// The first module of a build served with attribution (sink.js): patches console before the
// build's own modules are evaluated, so lines written as they load are kept too.

import { install } from "./attribute.js";

install();
