"""chasm: Charge And Spin Multipole refinement.

Joint refinement of one spin-resolved Hansen-Coppens multipole model against
X-ray, unpolarised neutron and polarised neutron (flipping ratio) data.
"""

__version__ = "0.1.0"
